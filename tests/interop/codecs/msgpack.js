// MessagePack with msgpack-lite, the pairing ws-messaging's own tests use:
// `encode` returns a Buffer (sent as a binary frame), `decode` takes one.
'use strict'

const msgpack = require('msgpack-lite')

module.exports = {
  name: 'msgpack',
  binary: true,
  encoder: msgpack.encode,
  decoder: msgpack.decode,
  // Frames that are not MessagePack at all: the decoder throws on each.
  malformed: [
    [0xc1], // the one reserved marker
    [0x82, 0xa4, 0x6e, 0x61, 0x6d, 0x65], // a map cut short
    [0xdb, 0xff, 0xff, 0xff, 0xff, 0x61], // a string claiming 4 GiB
    [0x92, 0x01] // an array missing an element
  ].map(bytes => Buffer.from(bytes))
}
