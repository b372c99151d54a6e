// CBOR with cbor-x 1.6.0, default options: objects are written as plain
// maps (never records), Buffers as byte strings, other typed arrays under
// their RFC 8746 tags (Uint8Array = tag 64), whole numbers up to 32 bits as
// integers and every other number as a 64-bit float; uint64/nint64
// integers decode to BigInt.
'use strict'

const cbor = require('cbor-x')

module.exports = {
  name: 'cbor',
  binary: true,
  encoder: cbor.encode,
  decoder: cbor.decode,
  // Frames that are not CBOR at all: the decoder throws on each.
  malformed: [
    [0xa2, 0x64, 0x6e, 0x61, 0x6d, 0x65], // a map cut short
    [0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // a string claiming 2^64 bytes
    [0x82, 0x01], // an array missing an element
    [0xa1, 0x61, 0x61, 0x01, 0x02] // trailing bytes
  ].map(bytes => Buffer.from(bytes))
}
