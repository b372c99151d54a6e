#!/usr/bin/env node
// The real ws-messaging@2.0.0 JavaScript client exercising a conformance
// server (the Rust `examples/echo_server/`, or js_server.js). See README.md.
//
//   node js_client_test.js ws://127.0.0.1:PORT [--codec json|msgpack|cbor]
//
// The server is expected to run with `--ping-interval-ms 200
// --auth-timeout-ms 300` and the same codec (default json; the codecs are
// tests/interop/codecs/NAME.js). Prints `ok - NAME` or `not ok - NAME:
// REASON` per case, then `N passed, M failed`; exits 0 iff nothing failed.
'use strict'

const assert = require('node:assert/strict')
const WebSocket = require('ws')

const SUBPROTOCOL = 'ws-messaging'
const SECRET = { token: 'secret' }
const CODECS = ['json', 'msgpack', 'cbor']

const USAGE = 'usage: node js_client_test.js ws://127.0.0.1:PORT [--codec json|msgpack|cbor] (loopback only)\n'

// The URL (first positional argument) and `--codec NAME` / `--codec=NAME`.
function parseArgs (argv) {
  let url
  let codec = 'json'
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--codec') {
      codec = argv[++i]
    } else if (arg.startsWith('--codec=')) {
      codec = arg.slice('--codec='.length)
    } else if (url === undefined && !arg.startsWith('--')) {
      url = arg
    } else {
      url = null
    }
  }
  return { url, codec }
}

const args = parseArgs(process.argv.slice(2))
const url = args.url
if (!url || !/^ws:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+(\/.*)?$/.test(url) || !CODECS.includes(args.codec)) {
  process.stderr.write(USAGE)
  process.exit(2)
}
const codec = require(`./codecs/${args.codec}.js`)

const { createHarness, delay, describeClose, nextEvent, record, rejection } = require('./harness')
const { test, run } = createHarness({ url, secret: SECRET, clientOptions: { encoder: codec.encoder, decoder: codec.decoder } })

// ---------------------------------------------------------------- auth ---

test('secret token connects with {user:"alice"}', async t => {
  const { client, reply } = await t.connect(SECRET)
  assert.deepEqual(reply, { user: 'alice' })
  assert.equal(client.connected, true)
})

test('slow token connects after ~500 ms with {user:"slow"}', async t => {
  const start = Date.now()
  const { reply } = await t.connect({ token: 'slow' })
  const elapsed = Date.now() - start
  assert.deepEqual(reply, { user: 'slow' })
  assert.ok(elapsed >= 450, `connected after only ${elapsed} ms`)
})

test('bad token is refused with 4003 "bad token" and no reconnect', async t => {
  // Default autoReconnect: a 4003 close must terminate the client anyway.
  const client = t.client({ token: 'nope' }, { autoReconnect: true })
  const connects = record(client, 'connect')
  const retries = record(client, 'retry')
  const [ev] = await nextEvent(client, 'close')
  assert.equal(ev.code, 4003, describeClose(ev))
  assert.ok(String(ev.reason).includes('bad token'), describeClose(ev))
  assert.equal(client.terminated, true, 'client not terminated')
  await delay(200)
  assert.equal(connects.length, 0, 'got connect')
  assert.equal(retries.length, 0, 'client retried')
  assert.equal(client.socket.readyState, WebSocket.CLOSED)
})

test('non-map and token-less auth values are refused with 4003', async t => {
  const auths = ['just a string', null, {}, ['secret'], 42]
  const closes = auths.map(auth => nextEvent(t.client(auth), 'close'))
  const results = await Promise.all(closes)
  results.forEach(([ev], i) => {
    const what = `auth ${JSON.stringify(auths[i])} ${describeClose(ev)}`
    assert.equal(ev.code, 4003, what)
    assert.ok(String(ev.reason).includes('bad token'), what)
  })
})

test('silent raw socket is closed with 4003 after the auth timeout', async t => {
  const start = Date.now()
  const socket = t.raw()
  const [code] = await nextEvent(socket, 'close')
  const elapsed = Date.now() - start
  assert.equal(code, 4003)
  // Server runs with --auth-timeout-ms 300: it must wait, not close at once.
  assert.ok(elapsed >= 200, `closed after only ${elapsed} ms`)
})

test('server echoes the ws-messaging subprotocol', async t => {
  const socket = t.raw(SUBPROTOCOL)
  await nextEvent(socket, 'open')
  assert.equal(socket.protocol, SUBPROTOCOL)
})

// ---------------------------------------------------------- procedures ---

test('echo round-trips JSON edge values', async t => {
  const { client } = await t.connect()
  let nested = 'bottom'
  for (let i = 0; i < 40; i++) { nested = i % 2 ? [nested] : { level: i, inner: nested } }
  const values = [
    null, true, false, 0, -1, 42,
    2 ** 53 - 1, -(2 ** 53 - 1), 0.1, -2.5, 1e-7, 1e21, 3.141592653589793,
    '', 'plain', 'emoji 😀🎉👩‍👩‍👧', 'CJK 漢字かな한국어', 'quotes " \\ / \n\t\r \u0000 \u001f \u2028',
    [], [1, 'two', null, true, [3, [4]], { five: 5 }],
    {}, { a: 1, b: [true, null], c: { d: 'e' } }, { 'ключ': 'значение', 'a b': 1, '': 'empty key' },
    nested
  ]
  for (const value of values) {
    assert.deepEqual(await client.invoke('echo', value), value, `echo ${JSON.stringify(value).slice(0, 80)}`)
  }
})

test('echo round-trips a 100 KiB string', async t => {
  const { client } = await t.connect()
  const big = '0123456789abcdef'.repeat(6400) + '😀漢字' // 102400 ASCII bytes + unicode
  const result = await client.invoke('echo', big)
  assert.equal(typeof result, 'string')
  assert.equal(result.length, big.length)
  assert.ok(result === big, '100 KiB string differs after echo')
})

test('sum adds its arguments', async t => {
  const { client } = await t.connect()
  assert.equal(await client.invoke('sum', 1, 2, 3), 6)
  assert.equal(await client.invoke('sum', 1.5, -0.25, 2 ** 40), 1.25 + 2 ** 40)
  assert.equal(await client.invoke('sum', 7), 7)
  assert.equal(await client.invoke('sum'), 0)
})

test('sleep replies with its value after the delay', async t => {
  const { client } = await t.connect()
  const start = Date.now()
  assert.deepEqual(await client.invoke('sleep', 100, { v: 'late' }), { v: 'late' })
  const elapsed = Date.now() - start
  assert.ok(elapsed >= 90, `replied after only ${elapsed} ms`)
})

test('fail rejects with a string containing the message', async t => {
  const { client } = await t.connect()
  const error = await rejection(client.invoke('fail', 'kaput 42'))
  assert.equal(typeof error, 'string', `error is ${typeof error}: ${JSON.stringify(error)}`)
  assert.ok(error.includes('kaput 42'), `error ${JSON.stringify(error)}`)
})

test('whoami returns a 24-char url-safe connection id, distinct per client', async t => {
  const [a, b] = await Promise.all([t.connect(), t.connect()])
  const idA = await a.client.invoke('whoami')
  const idB = await b.client.invoke('whoami')
  assert.match(idA, /^[A-Za-z0-9_-]{24}$/)
  assert.match(idB, /^[A-Za-z0-9_-]{24}$/)
  assert.notEqual(idA, idB)
  assert.equal(await a.client.invoke('whoami'), idA, 'id changed')
})

test('unknown procedure rejects with "NoProcedureError"', async t => {
  const { client } = await t.connect()
  const error = await rejection(client.invoke('no-such-procedure', 1))
  assert.equal(error, 'NoProcedureError')
})

test('200 concurrent sleeps each resolve with their own value, out of order', async t => {
  const { client } = await t.connect()
  const finished = []
  const calls = []
  for (let i = 0; i < 200; i++) {
    // The first one sleeps longest, so replies cannot all come in order.
    const ms = i === 0 ? 150 : Math.floor(Math.random() * 40)
    const value = { i, tag: `v${i}` }
    calls.push(client.invoke('sleep', ms, value).then(result => {
      finished.push(i)
      assert.deepEqual(result, value)
    }))
  }
  await Promise.all(calls)
  assert.equal(finished.length, 200)
  assert.notEqual(finished[0], 0, 'replies came back in call order')
})

// -------------------------------------------------------------- events ---

test('say is answered with said(...args) to the sender only', async t => {
  const [a, b] = await Promise.all([t.connect(), t.connect()])
  const bSaid = record(b.client, 'said')
  const args = ['hello', 1, { x: [null, true] }, ['y']]
  const said = nextEvent(a.client, 'said')
  await a.client.send('say', ...args)
  assert.deepEqual(await said, args)
  await delay(150) // time for a wrongly broadcast said to reach b
  assert.deepEqual(bSaid, [], 'said reached another client')
})

test('shout reaches every connected client as shouted(...args)', async t => {
  const [a, b] = await Promise.all([t.connect(), t.connect()])
  const gotA = nextEvent(a.client, 'shouted')
  const gotB = nextEvent(b.client, 'shouted')
  await a.client.send('shout', 'hi', 1)
  assert.deepEqual(await gotA, ['hi', 1])
  assert.deepEqual(await gotB, ['hi', 1])
})

// ------------------------------------------------- server -> client RPC ---

async function callMe (client, ...args) {
  const answer = Promise.race([
    nextEvent(client, 'called').then(args => ({ event: 'called', args })),
    nextEvent(client, 'call-failed').then(args => ({ event: 'call-failed', args }))
  ])
  await client.send('call-me', ...args)
  return answer
}

test('server invokes a client procedure: call-me double → called(42)', async t => {
  const { client } = await t.connect()
  client.register('double', x => 2 * x)
  assert.deepEqual(await callMe(client, 'double', 21), { event: 'called', args: [42] })
})

test('client procedure that throws → call-failed containing "boom"', async t => {
  const { client } = await t.connect()
  client.register('boom', () => { throw new Error('boom') })
  const { event, args } = await callMe(client, 'boom')
  assert.equal(event, 'call-failed', `got ${event}(${JSON.stringify(args)})`)
  assert.equal(typeof args[0], 'string')
  assert.ok(args[0].includes('boom'), JSON.stringify(args))
})

test('missing client procedure → call-failed("NoProcedureError")', async t => {
  const { client } = await t.connect()
  const { event, args } = await callMe(client, 'missing')
  assert.equal(event, 'call-failed', `got ${event}(${JSON.stringify(args)})`)
  assert.deepEqual(args, ['NoProcedureError'])
})

// --------------------------------------------------- malformed frames ---

if (!codec.binary) {
test('malformed frames get preprocessingError and the connection survives', async t => {
  const { client } = await t.connect()
  const frames = [
    'not json',
    '{"foo":1}',
    '{"name":"x","args":[],"id":0}',
    '{"name":"x","args":{}}',
    '[1,2]',
    '{"id":1.5,"result":1}',
    '{"name":"x","args":[],"id":-3}',
    '{"id":1,"result":1,"error":2}',
    '{"name":"x","args":[],"extra":1}',
    '"just a string"',
    'null'
  ]
  for (const frame of frames) {
    const reported = nextEvent(client, 'preprocessingError')
    client.socket.send(frame)
    const args = await reported
    assert.equal(args.length, 1, `${frame}: ${JSON.stringify(args)}`)
    assert.equal(typeof args[0], 'string', `${frame}: ${JSON.stringify(args)}`)
  }
  assert.equal(client.connected, true)
  assert.equal(await client.invoke('echo', 'still alive'), 'still alive')
})

test('a JSON message in a binary frame is decoded like a text frame', async t => {
  const { client } = await t.connect()
  const id = 1e9 // far beyond the client's own counter: its ack is ours alone
  const acked = nextEvent(client.socket, 'message', data => {
    try { return JSON.parse(data).id === id } catch (_) { return false }
  })
  client.socket.send(Buffer.from(JSON.stringify({ name: 'echo', args: ['bin ✓'], id })))
  const [data] = await acked
  assert.deepEqual(JSON.parse(data), { id, result: 'bin ✓' })
})
}

// ------------------------------------------------- binary codecs only ---

if (codec.binary) {
  // Frames sent past the ws-messaging client, on its socket, as binary.
  const sendRaw = (client, frame) => client.socket.send(frame, { binary: true })

  test(`malformed ${codec.name} frames get preprocessingError and the connection survives`, async t => {
    const { client } = await t.connect()
    const invalid = [
      { foo: 1 },
      { name: 'x', args: [], id: 0 },
      { name: 'x', args: {} },
      [1, 2],
      { id: 1.5, result: 1 },
      { name: 'x', args: [], id: -3 },
      { id: 1, result: 1, error: 2 },
      { name: 'x', args: [], extra: 1 },
      { name: 5, args: [] },
      { name: 'x', args: Buffer.from('[]') },
      'just a string',
      null
    ]
    const frames = [
      ...codec.malformed.map(frame => ({ frame, what: `malformed ${frame.toString('hex')}` })),
      ...invalid.map(value => ({ frame: codec.encoder(value), what: `invalid ${JSON.stringify(value)}`, validation: true }))
    ]
    for (const { frame, what, validation } of frames) {
      const reported = nextEvent(client, 'preprocessingError')
      sendRaw(client, frame)
      const args = await reported
      assert.equal(args.length, 1, `${what}: ${JSON.stringify(args)}`)
      assert.equal(typeof args[0], 'string', `${what}: ${JSON.stringify(args)}`)
      if (validation) { assert.ok(args[0].includes('Validation error'), `${what}: ${args[0]}`) }
    }
    assert.equal(client.connected, true)
    assert.equal(await client.invoke('echo', 'still alive'), 'still alive')
  })

  test(`an envelope written by the bare ${codec.name} encoder is acked in ${codec.name}`, async t => {
    const { client } = await t.connect()
    const id = 1e9 // far beyond the client's own counter: its ack is ours alone
    const acked = nextEvent(client.socket, 'message', data => {
      try { return codec.decoder(data).id === id } catch (_) { return false }
    })
    sendRaw(client, codec.encoder({ name: 'echo', args: [Buffer.from('bin ✓')], id }))
    const [data] = await acked
    assert.equal(typeof data === 'string', false, 'the ack came in a text frame')
    assert.deepEqual(codec.decoder(data), { id, result: Buffer.from('bin ✓') })
  })

  test('echo returns Buffers as equal Buffers', async t => {
    const { client } = await t.connect()
    const big = Buffer.alloc(100 * 1024, 0xa5)
    for (const buffer of [Buffer.from([0, 1, 2, 127, 128, 254, 255]), Buffer.alloc(0), big]) {
      const result = await client.invoke('echo', buffer)
      assert.ok(Buffer.isBuffer(result), `got ${result && result.constructor && result.constructor.name}`)
      assert.ok(result.equals(buffer), `echo of ${buffer.length} bytes differs`)
    }
    const nested = { data: Buffer.from('payload'), list: [Buffer.from([1]), 'text', { deep: Buffer.from([2, 3]) }] }
    assert.deepEqual(await client.invoke('echo', nested), nested)
  })

  test('echo returns a Uint8Array as a Uint8Array', async t => {
    const { client } = await t.connect()
    const bytes = new Uint8Array([9, 8, 7, 0, 255])
    const result = await client.invoke('echo', bytes)
    assert.ok(result instanceof Uint8Array && !Buffer.isBuffer(result), `got ${result && result.constructor && result.constructor.name}`)
    assert.deepEqual(Array.from(result), Array.from(bytes))
  })

  test('say with Buffer arguments is answered with equal Buffers', async t => {
    const { client } = await t.connect()
    const args = [Buffer.from([0xde, 0xad, 0xbe, 0xef]), 'text', { blob: Buffer.from('x') }]
    const said = nextEvent(client, 'said')
    await client.send('say', ...args)
    const got = await said
    assert.ok(Buffer.isBuffer(got[0]), `got ${got[0] && got[0].constructor && got[0].constructor.name}`)
    assert.deepEqual(got, args)
  })

  test('numbers beyond 32 bits come back as equal numbers, not BigInts', async t => {
    const { client } = await t.connect()
    const numbers = [2 ** 31, -(2 ** 31) - 1, 2 ** 32, -(2 ** 32), 2 ** 40, -(2 ** 40), 2 ** 53 - 1, -(2 ** 53 - 1), Date.now(), 1e21]
    for (const n of numbers) {
      const result = await client.invoke('echo', n)
      assert.equal(typeof result, 'number', `echo ${n} gave a ${typeof result}`)
      assert.equal(result, n)
    }
    assert.equal(await client.invoke('sum', 2 ** 40, 2 ** 31, -(2 ** 33)), 2 ** 40 + 2 ** 31 - 2 ** 33)
  })

  test('echo of undefined replies null', async t => {
    const { client } = await t.connect()
    assert.equal(await client.invoke('echo', undefined), null)
  })
}

// ----------------------------------------------------------- heartbeat ---

test('server pings are answered and the client stays connected', async t => {
  const { client } = await t.connect(SECRET, { pingInterval: 60000 })
  // ws-messaging's own `ping` handler answers the server; count its calls.
  let pings = 0
  const answer = client.handlers.ping
  client.handlers.ping = (...args) => { pings++; return answer(...args) }
  const closes = record(client, 'close')
  await delay(700)
  assert.deepEqual(closes, [], 'client was closed')
  assert.equal(client.connected, true)
  assert.ok(pings >= 1, `server sent ${pings} pings in 700 ms (--ping-interval-ms 200)`)
  assert.equal(await client.invoke('echo', 'after pings'), 'after pings')
})

test('client pings are answered (pong events)', async t => {
  const { client } = await t.connect(SECRET, { pingInterval: 100 })
  const pongs = record(client, 'pong')
  await nextEvent(client, 'pong')
  await nextEvent(client, 'pong')
  assert.ok(pongs.length >= 2)
  assert.equal(client.connected, true)
  assert.equal(await client.invoke('echo', 'after pongs'), 'after pongs')
})

run()
