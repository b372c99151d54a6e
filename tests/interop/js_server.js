#!/usr/bin/env node
// A ws-messaging@2.0.0 (JavaScript) server implementing the interop
// conformance contract, so that the Rust client can be tested against the
// reference implementation. See README.md for the contract.
//
//   node js_server.js [--port N] [--ping-interval-ms N] [--ping-timeout-ms N]
//                     [--auth-timeout-ms N] [--codec json|msgpack|cbor]
//
// The codec (default json) is tests/interop/codecs/NAME.js, used as the
// server's encoder and decoder.
//
// Prints exactly one line, `listening on 127.0.0.1:PORT`, to stdout once it
// accepts connections; everything else goes to stderr. SIGTERM/SIGINT close
// the server and exit 0.
'use strict'

const Server = require('ws-messaging')

const HOST = '127.0.0.1'
const SLOW_AUTH_DELAY_MS = 500
// Refusal error. ws-messaging closes with 4003 and `String(error)` as the
// reason; a thrown string (not an Error) makes the reason exactly
// 'bad token' instead of 'Error: bad token', matching the Rust echo server.
const REFUSAL = 'bad token'

const USAGE = 'usage: node js_server.js [--port N] [--ping-interval-ms N] ' +
  '[--ping-timeout-ms N] [--auth-timeout-ms N] [--codec json|msgpack|cbor]'
const CODECS = ['json', 'msgpack', 'cbor']

function fail (message) {
  process.stderr.write(`js_server: ${message}\n${USAGE}\n`)
  process.exit(2)
}

// Accepts `--flag N` and `--flag=N`; every value is a non-negative integer,
// but the codec's, which is a name.
function parseArgs (argv) {
  const names = {
    '--port': 'port',
    '--ping-interval-ms': 'pingInterval',
    '--ping-timeout-ms': 'pingTimeout',
    '--auth-timeout-ms': 'authTimeout'
  }
  const opts = { port: 0, authTimeout: 20000, codec: 'json' }
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i]
    let value
    if (flag === '--help' || flag === '-h') {
      process.stdout.write(USAGE + '\n')
      process.exit(0)
    }
    const eq = flag.indexOf('=')
    if (flag.startsWith('--') && eq > 0) {
      value = flag.slice(eq + 1)
      flag = flag.slice(0, eq)
    } else {
      value = argv[++i]
    }
    if (flag === '--codec') {
      if (!CODECS.includes(value)) { fail(`--codec must be one of ${CODECS.join(', ')}, got ${value}`) }
      opts.codec = value
      continue
    }
    const key = names[flag]
    if (!key) { fail(`unknown argument ${flag}`) }
    if (value === undefined || !/^\d+$/.test(value)) {
      fail(`${flag} needs a non-negative integer, got ${value}`)
    }
    opts[key] = Number(value)
  }
  if (opts.port > 65535) { fail('--port must be at most 65535') }
  return opts
}

const delay = (ms, value) => new Promise(resolve => setTimeout(resolve, ms, value))

function describe (value) {
  if (Buffer.isBuffer(value)) { return 'Buffer' }
  if (value instanceof Uint8Array) { return 'Uint8Array' }
  if (Array.isArray(value)) { return 'Array' }
  return value === null ? 'null' : typeof value
}
const ignore = () => {}

// The token of an auth value that is a map (a plain JSON object), else
// undefined: any other auth value (string, null, array, ...) is refused.
function authToken (auth) {
  const isMap = auth !== null && typeof auth === 'object' && !Array.isArray(auth)
  return isMap ? auth.token : undefined
}

// Close codes ws 7 accepts in close(): anything else throws there.
function isValidCloseCode (code) {
  return Number.isInteger(code) &&
    ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
     (code >= 3000 && code <= 4999))
}

// A local failure (ConnectionError, TimeoutError) is an Error object, which
// JSON would encode as `{}`-ish; a peer's error is already a wire value.
function wireError (error) {
  return error instanceof Error ? String(error) : error
}

// Procedures and events of one accepted (server-side) connection.
function setupClient (server, client) {
  const preprocessingErrors = []
  // preprocessingError events this client sent us (frames we sent it that
  // it could not decode or validate).
  client.on('preprocessingError', error => preprocessingErrors.push(error))

  client.register('echo', x => x)
  client.register('sum', (...numbers) => numbers.reduce((a, b) => a + b, 0))
  client.register('sleep', (ms, value) => delay(ms, value))
  client.register('fail', message => { throw new Error(message) })
  client.register('whoami', () => client.id)
  client.register('preprocessing-errors', () => preprocessingErrors.slice())
  // What JavaScript made of each argument: 'Buffer', 'Uint8Array', 'Array',
  // 'null', or its typeof ('number', 'bigint', 'string', ...).
  client.register('describe', (...args) => args.map(describe))
  client.register('kick', (code = 1000, reason = '') => {
    if (!isValidCloseCode(code)) { throw new Error(`invalid close code ${code}`) }
    if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
      throw new Error('close reason must be a string of at most 123 bytes')
    }
    // Close after the reply (null) has gone out.
    setTimeout(() => client.close(code, reason), 10)
  })

  // Note: on a ws-messaging Client `emit` is an alias of `send` (it goes
  // over the wire); `on` listens to events received from the peer.
  client.on('say', (...args) => client.send('said', ...args).catch(ignore))
  client.on('shout', (...args) => {
    // Encoded once, sent to every connected client (the broadcast path).
    server.encodeMessage('shouted', ...args).then(data => {
      for (const other of server.clients.values()) {
        if (other.connected) { other.sendEncoded(data).catch(ignore) }
      }
    }).catch(ignore)
  })
  client.on('call-me', (proc, ...args) => {
    client.invoke(proc, ...args).then(
      result => client.send('called', result),
      error => client.send('call-failed', wireError(error))
    ).catch(ignore)
  })
  // A string goes out verbatim as a text frame; an array of byte values
  // (0..255), or bytes (binary codecs), go out as a binary frame.
  client.on('send-raw', data => {
    const frame = Array.isArray(data) || data instanceof Uint8Array ? Buffer.from(data) : String(data)
    client.socket.send(frame, ignore)
  })
}

function main () {
  const opts = parseArgs(process.argv.slice(2))
  const socketOptions = {}
  if (opts.codec !== 'json') {
    const codec = require(`./codecs/${opts.codec}.js`)
    socketOptions.encoder = codec.encoder
    socketOptions.decoder = codec.decoder
  }
  if (opts.pingInterval !== undefined) { socketOptions.pingInterval = opts.pingInterval }
  if (opts.pingTimeout !== undefined) { socketOptions.pingTimeout = opts.pingTimeout }

  let server = null
  const connectionHook = async (client, auth) => {
    const token = authToken(auth)
    let reply
    if (token === 'secret') {
      reply = { user: 'alice' }
    } else if (token === 'slow') {
      await delay(SLOW_AUTH_DELAY_MS)
      reply = { user: 'slow' }
    } else {
      throw REFUSAL // eslint-disable-line no-throw-literal
    }
    setupClient(server, client)
    return reply
  }

  server = new Server(
    { host: HOST, port: opts.port },
    { connectionHook, authTimeout: opts.authTimeout },
    socketOptions)

  server.on('error', error => {
    process.stderr.write(`js_server: ${error && error.stack ? error.stack : error}\n`)
    process.exit(1)
  })
  server.wss.on('listening', () => {
    process.stdout.write(`listening on ${HOST}:${server.wss.address().port}\n`)
  })

  let closing = false
  const shutdown = () => {
    if (closing) { return }
    closing = true
    // Do not hang on a peer that never completes the close handshake.
    setTimeout(() => process.exit(0), 2000).unref()
    server.close().then(() => process.exit(0), () => process.exit(0))
  }
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', shutdown)
}

// ws-messaging leaves some promises unhandled (e.g. replying to a peer that
// has just gone away); they must not bring the server down.
process.on('unhandledRejection', reason => {
  process.stderr.write(`js_server: unhandled rejection: ${reason && reason.stack ? reason.stack : String(reason)}\n`)
})

main()
