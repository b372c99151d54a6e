#!/usr/bin/env node
// Checks the golden vectors of tests/vectors/<codec>/ against the real npm
// codec: the JavaScript decoder reads each Rust-encoded NAME.hex as the
// expected JavaScript value, and the JavaScript encoder writes that value as
// the bytes on record (NAME.hex itself for msgpack, whose encodings are
// byte-identical; NAME.cbor-x.hex for cbor, whose encoder writes maps with a
// 16-bit size and never shrinks floats).
//
//   node codecs/vectors.js --codec msgpack|cbor [--write]
//
// --write regenerates the JavaScript-side files instead of checking them.
// Prints `ok - NAME` / `not ok - NAME: REASON`, then `N passed, M failed`.
'use strict'

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const VECTORS = {
  event: { name: 'say', args: ['hi', 3] },
  call: { name: 'sum', args: [1, 2.5], id: 7 },
  result: { id: 7, result: { user: 'alice' } },
  error: { id: 8, error: 'Error: boom' },
  auth: { token: 'secret' },
  binary: { name: 'blob', args: [Buffer.from([0, 1, 255]), { data: Buffer.alloc(0) }] },
  // Which numbers JavaScript encoders write as floats: msgpack-lite every
  // number outside the int32 range, cbor-x those outside [-2^31, 2^32).
  numbers: { name: 'sum', args: [2 ** 40, -0.5, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 32)], id: 2 ** 31 - 1 }
}

function main () {
  const argv = process.argv.slice(2)
  const at = argv.indexOf('--codec')
  const name = at >= 0 ? argv[at + 1] : undefined
  if (name !== 'msgpack' && name !== 'cbor') {
    process.stderr.write('usage: node codecs/vectors.js --codec msgpack|cbor [--write]\n')
    process.exit(2)
  }
  const codec = require(`./${name}.js`)
  const dir = path.join(__dirname, '..', '..', 'vectors', name)
  const jsFile = vector => path.join(dir, name === 'cbor' ? `${vector}.cbor-x.hex` : `${vector}.hex`)
  const hex = buffer => Buffer.from(buffer).toString('hex')
  const read = file => fs.readFileSync(file, 'utf8').trim()

  let passed = 0
  let failed = 0
  for (const [vector, value] of Object.entries(VECTORS)) {
    try {
      if (argv.includes('--write')) {
        fs.writeFileSync(jsFile(vector), hex(codec.encoder(value)) + '\n')
      } else {
        assert.equal(hex(codec.encoder(value)), read(jsFile(vector)), 'JavaScript encoding')
      }
      const rust = Buffer.from(read(path.join(dir, `${vector}.hex`)), 'hex')
      assert.deepEqual(codec.decoder(rust), value, 'JavaScript decoding of the Rust bytes')
      console.log(`ok - ${vector}`)
      passed++
    } catch (error) {
      console.log(`not ok - ${vector}: ${String(error.message).replace(/\s+/g, ' ')}`)
      failed++
    }
  }
  console.log(`${passed} passed, ${failed} failed`)
  process.exitCode = failed === 0 ? 0 : 1
}

main()
