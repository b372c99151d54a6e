'use strict'
// The case runner and helpers shared by the JavaScript client tests
// (js_client_test.js and protobuf/js_client_test.js): per-case resources
// closed whatever the outcome, a timeout per case, one line per case, and
// the closing `N passed, M failed` line the Rust side checks.
//
// `test(name, fn, { timeoutMs })` overrides the 5 s timeout of one case;
// `createHarness({ ..., watchdogMs })` the 60 s limit of the whole run.

const assert = require('node:assert/strict')
const WebSocket = require('ws')
const Client = require('ws-messaging/client')

const CASE_TIMEOUT_MS = 5000
const WATCHDOG_MS = 60000
const SUBPROTOCOL = 'ws-messaging'

const delay = ms => new Promise(resolve => setTimeout(resolve, ms))

// The first `name` event whose arguments satisfy `pred`, as an array of
// arguments. Works on ws-messaging clients (eventemitter3) and ws sockets.
function nextEvent (emitter, name, pred = () => true) {
  return new Promise(resolve => {
    const listener = (...args) => {
      if (pred(...args)) {
        emitter.removeListener(name, listener)
        resolve(args)
      }
    }
    emitter.on(name, listener)
  })
}

function record (emitter, name) {
  const seen = []
  emitter.on(name, (...args) => seen.push(args))
  return seen
}

async function rejection (promise) {
  try {
    const value = await promise
    assert.fail(`expected a rejection, got ${JSON.stringify(value)}`)
  } catch (error) {
    if (error instanceof assert.AssertionError) { throw error }
    return error
  }
}

function describeClose (ev) {
  return `closed with ${ev && ev.code} ${JSON.stringify(ev && ev.reason)}`
}

// Starts a clean close; gives up on the handshake after 1 s.
function closeOrTerminate (socket, close) {
  return new Promise(resolve => {
    const timer = setTimeout(() => { socket.terminate(); resolve() }, 1000)
    socket.once('close', () => { clearTimeout(timer); resolve() })
    try { close() } catch (_) { socket.terminate() }
  })
}

function oneLine (error) {
  const text = error instanceof Error ? (error.message || error.name) : JSON.stringify(error)
  return String(text).replace(/\s+/g, ' ').trim().slice(0, 500)
}

// `url`: the server; `secret`: the default auth value; `clientOptions`: the
// codec's ws-messaging options (encoder, decoder).
function createHarness ({ url, secret, clientOptions, watchdogMs = WATCHDOG_MS }) {
  // Per-case resources, all closed when the case ends, whatever its outcome.
  class Context {
    constructor () {
      this.clients = []
      this.sockets = []
    }

    // A ws-messaging client. autoReconnect is off unless the case asks for
    // it, so a case that ends early leaves no reconnect timer behind.
    client (auth = secret, options = {}) {
      const client = new Client(url, { WebSocket, auth, autoReconnect: false, ...clientOptions, ...options })
      this.clients.push(client)
      return client
    }

    // A client plus its auth reply; rejects if closed before `connect`.
    async connect (auth = secret, options = {}) {
      const client = this.client(auth, options)
      const reply = await new Promise((resolve, reject) => {
        client.once('connect', resolve)
        client.once('close', ev => reject(new Error(`not connected: ${describeClose(ev)}`)))
      })
      return { client, reply }
    }

    // A raw ws socket offering the ws-messaging subprotocol.
    raw (protocols = SUBPROTOCOL) {
      const socket = new WebSocket(url, protocols)
      socket.on('error', () => {}) // reported through 'close'; never throw
      this.sockets.push(socket)
      return socket
    }

    async cleanup () {
      const closing = []
      for (const client of this.clients) {
        clearTimeout(client.reconnectTimeoutId)
        const socket = client.socket
        if (socket && socket.readyState !== WebSocket.CLOSED) {
          closing.push(closeOrTerminate(socket, () => client.close()))
        }
      }
      for (const socket of this.sockets) {
        if (socket.readyState !== WebSocket.CLOSED) {
          closing.push(closeOrTerminate(socket, () => socket.close()))
        }
      }
      await Promise.all(closing)
    }
  }

  const cases = []
  const test = (name, fn, { timeoutMs = CASE_TIMEOUT_MS } = {}) => { cases.push({ name, fn, timeoutMs }) }

  async function runCase ({ name, fn, timeoutMs }) {
    const t = new Context()
    let timer
    try {
      const timeout = new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs)
      })
      await Promise.race([fn(t), timeout])
      console.log(`ok - ${name}`)
      return true
    } catch (error) {
      console.log(`not ok - ${name}: ${oneLine(error)}`)
      return false
    } finally {
      clearTimeout(timer)
      await t.cleanup()
    }
  }

  // Runs every case in order (a failure does not stop the others).
  async function run () {
    const watchdog = setTimeout(() => {
      console.log(`not ok - watchdog: still running after ${watchdogMs} ms`)
      process.exit(1)
    }, watchdogMs)
    watchdog.unref()
    // A case that failed or timed out may leave invokes to reject later, and
    // ws-messaging itself leaves some promises unhandled: report, don't crash.
    process.on('unhandledRejection', reason => {
      process.stderr.write(`# unhandled rejection: ${oneLine(reason)}\n`)
    })
    let passed = 0
    let failed = 0
    for (const c of cases) {
      if (await runCase(c)) { passed++ } else { failed++ }
    }
    console.log(`${passed} passed, ${failed} failed`)
    process.exitCode = failed === 0 ? 0 : 1
  }

  return { test, run }
}

module.exports = {
  SUBPROTOCOL,
  closeOrTerminate,
  createHarness,
  delay,
  describeClose,
  nextEvent,
  oneLine,
  record,
  rejection
}
