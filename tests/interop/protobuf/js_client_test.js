#!/usr/bin/env node
// The real ws-messaging@2.0.0 JavaScript client, with the protobufjs codec of
// codec.js, exercising a conformance server that speaks protobuf (the Rust
// `echo_server --codec protobuf`, or js_server.js here). The messages are
// those of proto/conformance.proto.
//
//   node js_client_test.js ws://127.0.0.1:PORT
//
// The server is expected to run with `--ping-interval-ms 200
// --auth-timeout-ms 300`. Prints `ok - NAME` or `not ok - NAME: REASON` per
// case, then `N passed, M failed`; exits 0 iff nothing failed.
'use strict'

const assert = require('node:assert/strict')
const codec = require('./codec')

const { encode, decode, toValue, fromValue, text } = codec

const SUBPROTOCOL = 'ws-messaging'

const auth = token => encode('Auth', { token })
const SECRET = auth('secret')
const num = value => encode('Number', { value })
const delayMs = ms => encode('Delay', { ms })

const url = process.argv[2]
if (!url || !/^ws:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+(\/.*)?$/.test(url)) {
  process.stderr.write('usage: node js_client_test.js ws://127.0.0.1:PORT (loopback only)\n')
  process.exit(2)
}

const { createHarness, delay, describeClose, nextEvent, record, rejection } = require('../harness')
const { test, run } = createHarness({ url, secret: SECRET, clientOptions: { encoder: codec.encoder, decoder: codec.clientDecoder } })

// ---------------------------------------------------------------- auth ---

test('Auth{secret} connects with AuthReply{user:"alice"}', async t => {
  const { client, reply } = await t.connect(SECRET)
  assert.ok(reply instanceof Uint8Array, `reply is ${typeof reply}`)
  assert.equal(decode('AuthReply', reply).user, 'alice')
  assert.equal(client.connected, true)
})

test('Auth{slow} connects after ~500 ms with AuthReply{user:"slow"}', async t => {
  const start = Date.now()
  const { reply } = await t.connect(auth('slow'))
  const elapsed = Date.now() - start
  assert.equal(decode('AuthReply', reply).user, 'slow')
  assert.ok(elapsed >= 450, `connected after only ${elapsed} ms`)
})

test('a bad token is refused with 4003 "bad token" and no reconnect', async t => {
  const client = t.client(auth('nope'), { autoReconnect: true })
  const connects = record(client, 'connect')
  const [ev] = await nextEvent(client, 'close')
  assert.equal(ev.code, 4003, describeClose(ev))
  assert.equal(ev.reason, 'bad token', describeClose(ev))
  assert.equal(client.terminated, true, 'client not terminated')
  assert.equal(connects.length, 0, 'got connect')
})

test('auth values that are not an Auth message are refused with 4003', async t => {
  // Bytes that do not decode as Auth, an Auth without token, the default {}.
  const auths = [Buffer.from([0xff, 0xff, 0xff]), Buffer.from([0x0a, 0x09, 0x01]), auth(''), {}]
  const closes = auths.map(a => nextEvent(t.client(a), 'close'))
  const results = await Promise.all(closes)
  results.forEach(([ev], i) => {
    assert.equal(ev.code, 4003, `auth #${i} ${describeClose(ev)}`)
    assert.equal(ev.reason, 'bad token', `auth #${i} ${describeClose(ev)}`)
  })
})

test('silent raw socket is closed with 4003 after the auth timeout', async t => {
  const start = Date.now()
  const socket = t.raw()
  const [code] = await nextEvent(socket, 'close')
  const elapsed = Date.now() - start
  assert.equal(code, 4003)
  assert.ok(elapsed >= 200, `closed after only ${elapsed} ms`)
})

test('server echoes the ws-messaging subprotocol', async t => {
  const socket = t.raw(SUBPROTOCOL)
  await nextEvent(socket, 'open')
  assert.equal(socket.protocol, SUBPROTOCOL)
})

// ---------------------------------------------------------- procedures ---

test('echo round-trips Value messages, binary data included', async t => {
  const { client } = await t.connect()
  const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  const values = [
    null, true, false, 0, -1, 42, 2 ** 53 - 1, 0.1, -2.5, 1e-7, 1e300,
    '', 'plain', 'emoji 😀🎉👩‍👩‍👧', 'CJK 漢字かな한국어', 'controls \u0000 \u001f \u2028',
    allBytes, Buffer.alloc(0),
    [], [1, 'two', null, true, [3, [allBytes]]],
    { a: 1, b: [true, null], c: { d: 'e' }, '': 'empty key', 'ключ': 'значение' }
  ]
  for (const value of values) {
    const result = await client.invoke('echo', toValue(value))
    assert.ok(result instanceof Uint8Array, 'result is bytes')
    assert.deepEqual(fromValue(result), value, `echo ${JSON.stringify(value)}`)
  }
})

test('echo round-trips 100 KiB of text and of binary data', async t => {
  const { client } = await t.connect()
  const big = '0123456789abcdef'.repeat(6400) + '😀漢字'
  assert.equal(fromValue(await client.invoke('echo', toValue(big))), big)
  const blob = Buffer.alloc(100 * 1024)
  for (let i = 0; i < blob.length; i++) { blob[i] = (i * 7919) & 0xff }
  assert.ok(fromValue(await client.invoke('echo', toValue(blob))).equals(blob))
})

test('sum adds its Number arguments', async t => {
  const { client } = await t.connect()
  const sum = async (...values) => decode('Number', await client.invoke('sum', ...values.map(num))).value
  assert.equal(await sum(1, 2, 3), 6)
  assert.equal(await sum(1.5, -0.25, 2 ** 40), 1.25 + 2 ** 40)
  assert.equal(await sum(7), 7)
  assert.equal(await sum(), 0)
})

test('sleep replies with its Value after the delay', async t => {
  const { client } = await t.connect()
  const start = Date.now()
  const result = await client.invoke('sleep', delayMs(100), toValue({ v: 'late' }))
  const elapsed = Date.now() - start
  assert.deepEqual(fromValue(result), { v: 'late' })
  assert.ok(elapsed >= 90, `replied after only ${elapsed} ms`)
})

test('fail rejects with the text "Error: <msg>"', async t => {
  const { client } = await t.connect()
  const error = await rejection(client.invoke('fail', 'kaput 42'))
  assert.equal(error, 'Error: kaput 42')
})

test('whoami returns a 24-char url-safe connection id as text', async t => {
  const [a, b] = await Promise.all([t.connect(), t.connect()])
  const idA = text(await a.client.invoke('whoami'))
  const idB = text(await b.client.invoke('whoami'))
  assert.match(idA, /^[A-Za-z0-9_-]{24}$/)
  assert.match(idB, /^[A-Za-z0-9_-]{24}$/)
  assert.notEqual(idA, idB)
})

test('unknown procedure rejects with "NoProcedureError"', async t => {
  const { client } = await t.connect()
  assert.equal(await rejection(client.invoke('no-such-procedure', toValue(1))), 'NoProcedureError')
})

test('arguments that are not the procedure\'s message reject the call', async t => {
  const { client } = await t.connect()
  // A Delay that is not a Delay: field 1 as a length-delimited field.
  const error = await rejection(client.invoke('sleep', Buffer.from([0x0a, 0x01, 0x00]), toValue(1)))
  assert.equal(typeof error, 'string')
  assert.ok(error.length > 0)
})

test('100 concurrent sleeps each resolve with their own value, out of order', async t => {
  const { client } = await t.connect()
  const finished = []
  const calls = []
  for (let i = 0; i < 100; i++) {
    const ms = i === 0 ? 150 : Math.floor(Math.random() * 40)
    calls.push(client.invoke('sleep', delayMs(ms), toValue({ i })).then(result => {
      finished.push(i)
      assert.deepEqual(fromValue(result), { i })
    }))
  }
  await Promise.all(calls)
  assert.equal(finished.length, 100)
  assert.notEqual(finished[0], 0, 'replies came back in call order')
})

// -------------------------------------------------------------- events ---

test('say is answered with said(...args) to the sender only', async t => {
  const [a, b] = await Promise.all([t.connect(), t.connect()])
  const bSaid = record(b.client, 'said')
  const args = ['hello', 1, { x: [null, true] }, Buffer.from([0, 255])]
  const said = nextEvent(a.client, 'said')
  await a.client.send('say', ...args.map(toValue))
  assert.deepEqual((await said).map(fromValue), args)
  await delay(150)
  assert.deepEqual(bSaid, [], 'said reached another client')
})

test('shout reaches every connected client as shouted(...args)', async t => {
  const [a, b] = await Promise.all([t.connect(), t.connect()])
  const gotA = nextEvent(a.client, 'shouted')
  const gotB = nextEvent(b.client, 'shouted')
  await a.client.send('shout', toValue('hi'), toValue(1))
  assert.deepEqual((await gotA).map(fromValue), ['hi', 1])
  assert.deepEqual((await gotB).map(fromValue), ['hi', 1])
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

test('server invokes a client procedure: call-me double → called(Number 42)', async t => {
  const { client } = await t.connect()
  client.register('double', x => num(2 * decode('Number', x).value))
  const { event, args } = await callMe(client, 'double', num(21))
  assert.equal(event, 'called')
  assert.equal(decode('Number', args[0]).value, 42)
})

test('a client procedure returning nothing → called(<empty>)', async t => {
  const { client } = await t.connect()
  client.register('nothing', () => undefined)
  const { event, args } = await callMe(client, 'nothing')
  assert.equal(event, 'called')
  assert.equal(args[0].length, 0)
})

test('client procedure that throws → call-failed("Error: boom")', async t => {
  const { client } = await t.connect()
  client.register('boom', () => { throw new Error('boom') })
  const { event, args } = await callMe(client, 'boom')
  assert.equal(event, 'call-failed')
  assert.equal(text(args[0]), 'Error: boom')
})

test('missing client procedure → call-failed("NoProcedureError")', async t => {
  const { client } = await t.connect()
  const { event, args } = await callMe(client, 'missing')
  assert.equal(event, 'call-failed')
  assert.equal(text(args[0]), 'NoProcedureError')
})

// --------------------------------------------------- malformed frames ---

const { Envelope } = codec
const frame = object => Buffer.from(Envelope.encode(object).finish())

test('malformed frames get preprocessingError (text) and the connection survives', async t => {
  const { client } = await t.connect()
  const frames = [
    // Decode errors: the text is the decoder's own.
    ['garbage', Buffer.from([0xff, 0xff, 0xff]), /Error/],
    ['a truncated envelope', frame({ message: { name: 'echo', args: [toValue(1)], id: 1e6 } }).subarray(0, 6), /Error/],
    ['text, not protobuf', '{"name":"echo","args":[],"id":1}', /Error/],
    ['an empty frame', Buffer.alloc(0), /^Error: Validation error$/],
    ['an event with id 0', frame({ message: { name: 'echo', args: [], id: 0 } }), /^Error: Validation error$/],
    ['an empty name', frame({ message: { name: '', args: [], id: 3 } }), /^Error: Validation error$/],
    ['an ack without id', frame({ ack: { result: Buffer.from('x') } }), /^Error: Validation error$/],
    ['an ack without result or error', frame({ ack: { id: 5 } }), /^Error: Validation error$/]
  ]
  for (const [what, data, expected] of frames) {
    const reported = nextEvent(client, 'preprocessingError')
    client.socket.send(data)
    const args = await reported
    assert.equal(args.length, 1, `${what}: ${JSON.stringify(args)}`)
    assert.equal(typeof args[0], 'string', `${what}: ${JSON.stringify(args)}`)
    assert.match(args[0], expected, what)
  }
  assert.equal(client.connected, true)
  assert.equal(fromValue(await client.invoke('echo', toValue('still alive'))), 'still alive')
})

test('unknown fields are skipped: such a frame is dispatched', async t => {
  const { client } = await t.connect()
  const id = 1e9 // beyond the client's own counter: its ack is ours alone
  const acked = nextEvent(client.socket, 'message', data => {
    try { return codec.clientDecoder(data).id === id } catch (_) { return false }
  })
  const bytes = frame({ message: { name: 'echo', args: [toValue('extra ✓')], id } })
  // Envelope field 15 (varint 1) and field 16 (bytes "zz") appended.
  client.socket.send(Buffer.concat([bytes, Buffer.from([0x78, 0x01, 0x82, 0x01, 0x02, 0x7a, 0x7a])]))
  const [data] = await acked
  assert.equal(fromValue(codec.clientDecoder(data).result), 'extra ✓')
})

// ----------------------------------------------------------- heartbeat ---

test('server pings are answered (empty result) and the client stays connected', async t => {
  const { client } = await t.connect(SECRET, { pingInterval: 60000 })
  let pings = 0
  const answer = client.handlers.ping
  client.handlers.ping = (...args) => { pings++; return answer(...args) }
  const closes = record(client, 'close')
  await delay(700)
  assert.deepEqual(closes, [], 'client was closed')
  assert.equal(client.connected, true)
  assert.ok(pings >= 1, `server sent ${pings} pings in 700 ms (--ping-interval-ms 200)`)
})

test('client pings are answered (pong events)', async t => {
  const { client } = await t.connect(SECRET, { pingInterval: 100 })
  await nextEvent(client, 'pong')
  await nextEvent(client, 'pong')
  assert.equal(client.connected, true)
  assert.equal(fromValue(await client.invoke('echo', toValue('after pongs'))), 'after pongs')
})

run()
