// The protobuf encoder/decoder pair for ws-messaging@2.0.0, built on
// protobufjs and the repository's proto/envelope.proto: the JavaScript side
// of the Rust crate `ws-messaging-protobuf` (same envelope, same value
// conventions, see proto/envelope.proto and tests/interop/protobuf/README.md).
//
//   const codec = require('./codec')
//   new Client(url, { encoder: codec.encoder, decoder: codec.clientDecoder, auth: bytes })
//   new Server(wssOptions, { connectionHook }, { encoder: codec.encoder, decoder: codec.serverDecoder })
//
// Values (arguments, results) travel as bytes: a Uint8Array (an encoded
// message) as it is, a string as UTF-8, null/undefined as empty bytes.
// Received arguments and results are Buffers; errors are strings, and so are
// the arguments of a `preprocessingError` event.
'use strict'

const path = require('node:path')
const protobuf = require('protobufjs')

const PROTO_DIR = path.join(__dirname, '..', '..', '..', 'proto')
const root = protobuf.loadSync([
  path.join(PROTO_DIR, 'envelope.proto'),
  path.join(PROTO_DIR, 'conformance.proto')
])
const Envelope = root.lookupType('ws_messaging.Envelope')
const MAX_SAFE_ID = protobuf.util.Long.fromNumber(Number.MAX_SAFE_INTEGER, true)
const EMPTY = Buffer.alloc(0)

const hasOwn = (object, key) => Object.prototype.hasOwnProperty.call(object, key)

// One value as bytes.
function toBytes (value, what) {
  if (value instanceof Uint8Array) { return value }
  if (typeof value === 'string') { return Buffer.from(value, 'utf8') }
  if (value === null || value === undefined) { return EMPTY }
  throw new TypeError(`${what}: a protobuf value is a Uint8Array (an encoded message), ` +
    `a string or null, not ${Array.isArray(value) ? 'an array' : typeof value}`)
}

// An error value as UTF-8 text: a string as it is, anything else as JSON.
function errorBytes (error) {
  const text = typeof error === 'string' ? error : JSON.stringify(error)
  return Buffer.from(text === undefined ? String(error) : text, 'utf8')
}

function toBuffer (data) {
  if (typeof data === 'string') { return Buffer.from(data, 'utf8') } // a text frame
  if (data instanceof ArrayBuffer) { return Buffer.from(data) }
  if (Array.isArray(data)) { return Buffer.concat(data) } // ws 'fragments'
  return data
}

const text = bytes => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')

// A uint64 id as a JavaScript number; beyond 2^53 it stays a Long, which
// fails ws-messaging's validation (an id must be a number).
function idNumber (id) {
  if (typeof id === 'number') { return id }
  return id.greaterThan(MAX_SAFE_ID) ? id : id.toNumber()
}

// ws-messaging message object (or the auth value) → frame bytes.
function encoder (message) {
  if (message instanceof Uint8Array) { return message } // the auth frame: a bare value
  if (hasOwn(message, 'name')) {
    const body = {
      name: message.name,
      args: message.args.map((arg, i) => toBytes(arg, `${message.name} argument ${i}`))
    }
    if (hasOwn(message, 'id')) { body.id = message.id }
    return Envelope.encode({ message: body }).finish()
  }
  if (hasOwn(message, 'id')) {
    const ack = { id: message.id }
    if (hasOwn(message, 'error')) {
      ack.error = errorBytes(message.error)
    } else {
      ack.result = toBytes(message.result, `result of #${message.id}`)
    }
    return Envelope.encode({ ack }).finish()
  }
  // Any other object is an auth value; only `{}` (the default) has a
  // protobuf form: the empty message.
  if (Object.keys(message).length === 0) { return EMPTY }
  throw new TypeError('an auth value must be a Uint8Array (an encoded message)')
}

// Frame → ws-messaging message object, for validate() and dispatch.
function decodeEnvelope (data) {
  const envelope = Envelope.decode(toBuffer(data))
  if (envelope.kind === 'message') {
    const m = envelope.message
    // A peer's preprocessingError carries its error text.
    const args = m.name === 'preprocessingError' ? m.args.map(text) : m.args
    const message = { name: m.name, args }
    if (m._id === 'id') { message.id = idNumber(m.id) }
    return message
  }
  if (envelope.kind === 'ack') {
    const a = envelope.ack
    const message = {}
    if (a._id === 'id') { message.id = idNumber(a.id) }
    if (a.outcome === 'result') { message.result = a.result }
    if (a.outcome === 'error') { message.error = text(a.error) }
    return message
  }
  return {} // neither kind: fails validation
}

// A client decodes envelopes only.
function clientDecoder (data) {
  return decodeEnvelope(data)
}

// A server's connections decode their first frame, the auth value, as bare
// bytes (the connection hook decodes it), then envelopes. ws-messaging calls
// the decoder as a method of the connection, so `this.connected` tells the
// auth frame (before the hook accepted the client) from the rest.
function serverDecoder (data) {
  return this.connected ? decodeEnvelope(data) : toBuffer(data)
}

// ------------------------------------------- conformance.proto helpers ---

const types = {}
for (const name of ['Auth', 'AuthReply', 'Number', 'Delay', 'Value', 'List', 'Map', 'Texts']) {
  types[name] = root.lookupType(`ws_messaging.conformance.${name}`)
}

const encode = (type, object) => Buffer.from(types[type].encode(types[type].fromObject(object)).finish())
const decode = (type, bytes) => types[type].decode(bytes)

// A JavaScript value as a conformance Value message (the protobuf stand-in
// for a JSON value): null, booleans, numbers, strings, Uint8Arrays, arrays
// and plain objects.
function valueObject (value) {
  if (value === null || value === undefined) { return {} }
  if (typeof value === 'string') { return { text: value } }
  if (typeof value === 'number') { return { number: value } }
  if (typeof value === 'boolean') { return { flag: value } }
  if (value instanceof Uint8Array) { return { data: value } }
  if (Array.isArray(value)) { return { list: { items: value.map(valueObject) } } }
  const entries = {}
  for (const [key, item] of Object.entries(value)) { entries[key] = valueObject(item) }
  return { map: { entries } }
}

function fromValueMessage (message) {
  switch (message.kind) {
    case 'text': return message.text
    case 'number': return message.number
    case 'flag': return message.flag
    case 'data': return Buffer.from(message.data)
    case 'list': return message.list.items.map(fromValueMessage)
    case 'map': {
      const object = {}
      for (const [key, item] of Object.entries(message.map.entries)) { object[key] = fromValueMessage(item) }
      return object
    }
    default: return null
  }
}

const toValue = value => encode('Value', valueObject(value))
const fromValue = bytes => fromValueMessage(decode('Value', bytes))

module.exports = {
  root,
  Envelope,
  encoder,
  clientDecoder,
  serverDecoder,
  decodeEnvelope,
  text,
  types,
  encode,
  decode,
  toValue,
  fromValue
}
