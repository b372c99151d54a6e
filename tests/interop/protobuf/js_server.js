#!/usr/bin/env node
// A ws-messaging@2.0.0 (JavaScript) server with the protobufjs codec of
// codec.js, implementing the conformance contract with the messages of
// proto/conformance.proto, so that the Rust client (`Client::<Protobuf>`)
// can be tested against the reference implementation.
//
//   node js_server.js [--port N] [--ping-interval-ms N] [--ping-timeout-ms N]
//                     [--auth-timeout-ms N]
//
// Prints exactly one line, `listening on 127.0.0.1:PORT`, to stdout once it
// accepts connections; everything else goes to stderr. SIGTERM/SIGINT close
// the server and exit 0.
//
// Beyond the contract: event `send-raw(bytes)` writes those bytes verbatim
// as a binary frame to the sender; procedure `preprocessing-errors()`
// returns a Texts message with the preprocessingError texts this connection
// has sent the server.
'use strict'

const Server = require('ws-messaging')
const codec = require('./codec')

const { encode, decode, text } = codec

const HOST = '127.0.0.1'
const SLOW_AUTH_DELAY_MS = 500
// A thrown string makes the close reason exactly 'bad token'.
const REFUSAL = 'bad token'

function fail (message) {
  process.stderr.write(`js_server: ${message}\n`)
  process.exit(2)
}

function parseArgs (argv) {
  const names = {
    '--port': 'port',
    '--ping-interval-ms': 'pingInterval',
    '--ping-timeout-ms': 'pingTimeout',
    '--auth-timeout-ms': 'authTimeout'
  }
  const opts = { port: 0, authTimeout: 20000 }
  for (let i = 0; i < argv.length; i++) {
    const key = names[argv[i]]
    const value = argv[++i]
    if (!key) { fail(`unknown argument ${argv[i - 1]}`) }
    if (value === undefined || !/^\d+$/.test(value)) { fail(`${argv[i - 1]} needs a non-negative integer`) }
    opts[key] = Number(value)
  }
  return opts
}

const delay = (ms, value) => new Promise(resolve => setTimeout(resolve, ms, value))
const ignore = () => {}

// A local failure (ConnectionError, TimeoutError) is an Error object; a
// peer's error is already its text.
function wireError (error) {
  return error instanceof Error ? String(error) : error
}

function setupClient (server, client) {
  const preprocessingErrors = []
  // The decoder gives a peer's preprocessingError argument as text.
  client.on('preprocessingError', error => preprocessingErrors.push(error))

  // Each Value is decoded and encoded again: a typed round trip.
  client.register('echo', x => codec.toValue(codec.fromValue(x)))
  client.register('sum', (...numbers) =>
    encode('Number', { value: numbers.reduce((a, n) => a + decode('Number', n).value, 0) }))
  client.register('sleep', (ms, value) => delay(decode('Delay', ms).ms, value))
  client.register('fail', message => { throw new Error(text(message)) })
  client.register('whoami', () => client.id)
  client.register('preprocessing-errors', () => encode('Texts', { items: preprocessingErrors }))

  client.on('say', (...args) => client.send('said', ...args).catch(ignore))
  client.on('shout', (...args) => {
    // Encoded once, sent to every connected client.
    server.encodeMessage('shouted', ...args).then(data => {
      for (const other of server.clients.values()) {
        if (other.connected) { other.sendEncoded(data).catch(ignore) }
      }
    }).catch(ignore)
  })
  client.on('call-me', (proc, ...args) => {
    client.invoke(text(proc), ...args).then(
      result => client.send('called', result),
      error => client.send('call-failed', wireError(error))
    ).catch(ignore)
  })
  client.on('send-raw', data => client.socket.send(data, { binary: true }, ignore))
}

function main () {
  const opts = parseArgs(process.argv.slice(2))
  const socketOptions = { encoder: codec.encoder, decoder: codec.serverDecoder }
  if (opts.pingInterval !== undefined) { socketOptions.pingInterval = opts.pingInterval }
  if (opts.pingTimeout !== undefined) { socketOptions.pingTimeout = opts.pingTimeout }

  let server = null
  // `auth` is the first frame's bytes (serverDecoder).
  const connectionHook = async (client, auth) => {
    let token
    try { token = decode('Auth', auth).token } catch (_) { throw REFUSAL }
    let user
    if (token === 'secret') {
      user = 'alice'
    } else if (token === 'slow') {
      await delay(SLOW_AUTH_DELAY_MS)
      user = 'slow'
    } else {
      throw REFUSAL
    }
    setupClient(server, client)
    return encode('AuthReply', { user })
  }

  server = new Server({ host: HOST, port: opts.port }, { connectionHook, authTimeout: opts.authTimeout }, socketOptions)
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
    setTimeout(() => process.exit(0), 2000).unref()
    server.close().then(() => process.exit(0), () => process.exit(0))
  }
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', shutdown)
}

process.on('unhandledRejection', reason => {
  process.stderr.write(`js_server: unhandled rejection: ${reason && reason.stack ? reason.stack : String(reason)}\n`)
})

main()
