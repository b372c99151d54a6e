#!/usr/bin/env node
// The protobufjs codec (codec.js) against the golden frames of
// tests/vectors/protobuf/, which the Rust codec's tests assert too: the
// ws-messaging message object of each vector must encode to exactly the
// file's bytes, and the file must decode back to that object.
//
//   node vectors_test.js
//
// Prints `ok - NAME` / `not ok - NAME: REASON` per vector, then
// `N passed, M failed`; exits 0 iff nothing failed.
'use strict'

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const codec = require('./codec')

const DIR = path.join(__dirname, '..', '..', 'vectors', 'protobuf')

// name → [the object handed to the encoder, what the decoder gives back]
const vectors = {
  event: [{ name: 'said', args: ['hello', Buffer.from([0x00, 0xff])] },
    { name: 'said', args: [Buffer.from('hello'), Buffer.from([0x00, 0xff])] }],
  call: [{ name: 'sum', args: [codec.encode('Number', { value: 1.5 }), codec.encode('Number', { value: 2 })], id: 7 }],
  result_ack: [{ id: 7, result: codec.encode('Number', { value: 3.5 }) }],
  error_ack: [{ id: 8, error: 'Error: Some error' }],
  ping_call: [{ name: 'ping', args: [], id: 1 }],
  unit_result_ack: [{ id: 1, result: null }, { id: 1, result: Buffer.alloc(0) }],
  connect_event: [{ name: 'connect', args: [undefined] }, { name: 'connect', args: [Buffer.alloc(0)] }]
}

let passed = 0
let failed = 0
function check (name, fn) {
  try {
    fn()
    console.log(`ok - ${name}`)
    passed++
  } catch (error) {
    console.log(`not ok - ${name}: ${String(error.message).replace(/\s+/g, ' ')}`)
    failed++
  }
}

const hex = bytes => Buffer.from(bytes).toString('hex')

for (const [name, [message, decoded = message]] of Object.entries(vectors)) {
  const golden = fs.readFileSync(path.join(DIR, `${name}.bin`))
  check(`${name}: protobufjs encodes the golden bytes`, () => {
    assert.equal(hex(codec.encoder(message)), hex(golden))
  })
  check(`${name}: the golden bytes decode to the message`, () => {
    assert.deepEqual(codec.clientDecoder(golden), decoded)
  })
}

check('auth: the bare Auth message is the golden auth frame', () => {
  const golden = fs.readFileSync(path.join(DIR, 'auth.bin'))
  const auth = codec.encode('Auth', { token: 'secret' })
  assert.equal(hex(codec.encoder(auth)), hex(golden))
  // A server connection reads its first frame as bare bytes.
  const bytes = codec.serverDecoder.call({ connected: false }, golden)
  assert.equal(codec.decode('Auth', bytes).token, 'secret')
})

check('the default auth value {} is the empty message', () => {
  assert.equal(codec.encoder({}).length, 0)
})

check('values that are not bytes-shaped are refused with a TypeError', () => {
  assert.throws(() => codec.encoder({ name: 'x', args: [42] }), TypeError)
  assert.throws(() => codec.encoder({ id: 1, result: { a: 1 } }), TypeError)
})

console.log(`${passed} passed, ${failed} failed`)
process.exitCode = failed === 0 ? 0 : 1
