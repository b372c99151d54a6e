// The conformance checks the browser page (index.html) runs with the real
// ws-messaging@2.0.0 client, loaded from its unmodified npm sources by
// require.js, over the browser's own WebSocket, against the conformance
// server (`echo_server --http`) at the `ws` query parameter:
//
//   http://127.0.0.1:PAGE_PORT/?ws=ws://127.0.0.1:PORT/ws
//
// Served by tests/browser.rs and driven by tests/interop/browser.js
// (`cargo test --test browser`). Each check has a 5 s bound; each result
// goes into `window.results` ({name, ok, reason}) and a line of the page's
// list (`ok - NAME` / `not ok - NAME: REASON`); `window.done` is true at the
// end.
'use strict'
/* global cjs */

const SECRET = { token: 'secret' }
const CHECK_TIMEOUT_MS = 5000
// An awaited event; shorter than a check, so that its name is the reason.
const EVENT_TIMEOUT_MS = 3000

// The npm files the client needs, as the page's server serves them.
const CLIENT_JS = '/node_modules/ws-messaging/src/Client.js'
const FILES = [
  '/node_modules/eventemitter3/index.js',
  CLIENT_JS,
  '/node_modules/ws-messaging/src/utils.js'
]

window.results = []
window.done = false

const list = document.getElementById('results')
const status = document.getElementById('status')

function report (name, ok, reason) {
  window.results.push({ name, ok, reason: ok ? undefined : reason })
  const item = document.createElement('li')
  item.className = ok ? 'ok' : 'not-ok'
  item.textContent = ok ? `ok - ${name}` : `not ok - ${name}: ${reason}`
  list.appendChild(item)
}

// ------------------------------------------------------------ asserts ---

function describe (value) {
  if (value instanceof Error) { return `${value.name}: ${value.message}` }
  try { return JSON.stringify(value) } catch (_) { return String(value) }
}

function deepEqual (a, b) {
  if (a === b) { return true }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) { return false }
  if (Array.isArray(a) !== Array.isArray(b)) { return false }
  const keysA = Object.keys(a)
  const keysB = Object.keys(b)
  if (keysA.length !== keysB.length) { return false }
  return keysA.every(k => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]))
}

function same (actual, expected, what) {
  if (!deepEqual(actual, expected)) {
    throw new Error(`${what}: got ${describe(actual)}, expected ${describe(expected)}`)
  }
}

function check (condition, what) {
  if (!condition) { throw new Error(what) }
}

// ------------------------------------------------------------ helpers ---

function withTimeout (promise, ms, what) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// The arguments of the next `event` of `client`.
function nextEvent (client, event, ms = EVENT_TIMEOUT_MS) {
  return withTimeout(new Promise(resolve => client.once(event, (...args) => resolve(args))), ms, `event ${event}`)
}

// Every `event` of `client` from now on, as argument lists.
function record (client, event) {
  const seen = []
  client.on(event, (...args) => seen.push(args))
  return seen
}

// Rejection value of `promise`; fails if it resolves.
async function rejection (promise) {
  let value
  try {
    value = await promise
  } catch (error) {
    return error
  }
  throw new Error(`resolved with ${describe(value)} instead of rejecting`)
}

function describeClose (ev) {
  return `closed with ${ev.code} ${JSON.stringify(ev.reason)}`
}

let Client

// One check's clients, closed when it ends.
class Context {
  constructor (url) {
    this.url = url
    this.clients = []
  }

  client (auth, options = {}) {
    const client = new Client(this.url, { auth, autoReconnect: false, ackTimeout: 4000, ...options })
    this.clients.push(client)
    return client
  }

  // A client authenticated with `auth`; `{client, reply}` once connected.
  async connect (auth = SECRET) {
    const client = this.client(auth)
    const reply = await withTimeout(new Promise((resolve, reject) => {
      client.once('connect', data => resolve(data))
      client.once('close', ev => reject(new Error(`before connect: ${describeClose(ev)}`)))
    }), CHECK_TIMEOUT_MS, 'connect')
    return { client, reply }
  }

  close () {
    for (const client of this.clients) { client.close() }
  }
}

// ------------------------------------------------------------- checks ---

const checks = []
function define (name, fn) { checks.push({ name, fn }) }

define('secret token connects with {user:"alice"} over the browser\'s WebSocket', async t => {
  const { client, reply } = await t.connect()
  same(reply, { user: 'alice' }, 'connect reply')
  check(client.connected === true, 'client.connected is not true')
  check(client.socket instanceof window.WebSocket, 'the socket is not the browser\'s WebSocket')
  same(client.socket.protocol, 'ws-messaging', 'negotiated subprotocol')
})

define('echo returns a nested value unchanged', async t => {
  const { client } = await t.connect()
  const value = {
    list: [1, 'two', { three: null, four: [true, false, []] }],
    text: 'h\u00e9llo \u2603 \ud83d\ude00 "quoted" \\ /',
    negative: -1.5,
    large: 9007199254740991,
    empty: {},
    deep: { a: { b: { c: { d: [[{ e: 'end' }]] } } } }
  }
  same(await client.invoke('echo', value), value, 'echo')
})

define('sum adds its arguments', async t => {
  const { client } = await t.connect()
  same(await client.invoke('sum', 1, 2, 3.5), 6.5, 'sum(1, 2, 3.5)')
  same(await client.invoke('sum'), 0, 'sum()')
})

define('fail rejects with the remote error message', async t => {
  const { client } = await t.connect()
  const error = await rejection(client.invoke('fail', 'kaput 42'))
  check(typeof error === 'string', `error is a ${typeof error}: ${describe(error)}`)
  check(error.includes('kaput 42'), `error ${describe(error)} lacks the message`)
})

define('say is answered with said(...args)', async t => {
  const { client } = await t.connect()
  const args = ['hello', 1, { x: [null, true] }, ['y']]
  const said = nextEvent(client, 'said')
  await client.send('say', ...args)
  same(await said, args, 'said')
})

define('shout reaches every connected client as shouted(...args)', async t => {
  const [a, b] = await Promise.all([t.connect(), t.connect()])
  const gotA = nextEvent(a.client, 'shouted')
  const gotB = nextEvent(b.client, 'shouted')
  await a.client.send('shout', 'hi', { n: 1 })
  same(await gotA, ['hi', { n: 1 }], 'shouted at the sender')
  same(await gotB, ['hi', { n: 1 }], 'shouted at the other client')
})

define('call-me: the server invokes a page procedure and called(result) comes back', async t => {
  const { client } = await t.connect()
  const calls = []
  client.register('double', async x => { calls.push(x); return 2 * x })
  const answer = Promise.race([
    nextEvent(client, 'called').then(args => ({ event: 'called', args })),
    nextEvent(client, 'call-failed').then(args => ({ event: 'call-failed', args }))
  ])
  await client.send('call-me', 'double', 21)
  same(await answer, { event: 'called', args: [42] }, 'answer')
  same(calls, [21], 'calls of the page procedure')
})

define('whoami returns a 24-char connection id, distinct per client', async t => {
  const [a, b] = await Promise.all([t.connect(), t.connect()])
  const idA = await a.client.invoke('whoami')
  const idB = await b.client.invoke('whoami')
  check(/^[A-Za-z0-9_-]{24}$/.test(idA), `id ${describe(idA)}`)
  check(/^[A-Za-z0-9_-]{24}$/.test(idB), `id ${describe(idB)}`)
  check(idA !== idB, `both clients have id ${idA}`)
  same(await a.client.invoke('whoami'), idA, 'second whoami')
})

define('rooms: join, then to-room reaches the members only as room(room, ...args)', async t => {
  const [a, b, c] = await Promise.all([t.connect(), t.connect(), t.connect()])
  const room = `lobby-${Math.random().toString(36).slice(2)}`
  same(await a.client.invoke('join', room), true, 'join of a')
  same(await b.client.invoke('join', room), true, 'join of b')
  const got = [a, b, c].map(p => record(p.client, 'room'))
  const toB = nextEvent(b.client, 'room')
  await a.client.send('to-room', room, 'hi', 2)
  same(await toB, [room, 'hi', 2], 'room at b')
  // What a client sends keeps its order: once c has this later shout, a
  // wrongly delivered room event would have reached it first.
  const marker = `settle-${Math.random().toString(36).slice(2)}`
  const settled = [a, b, c].map(p => nextEvent(p.client, 'shouted'))
  await a.client.send('shout', marker)
  for (const s of settled) { same(await s, [marker], 'the settle shout') }
  same(got[0], [[room, 'hi', 2]], 'room events at a (a member, the sender)')
  same(got[1], [[room, 'hi', 2]], 'room events at b (a member)')
  same(got[2], [], 'room events at c (not a member)')
})

define('refused auth: token "nope" is closed with 4003 "bad token"', async t => {
  // autoReconnect on: a 4003 close must end the client anyway.
  const client = t.client({ token: 'nope' }, { autoReconnect: true })
  const connects = record(client, 'connect')
  const retries = record(client, 'retry')
  const [ev] = await nextEvent(client, 'close')
  same(ev.code, 4003, describeClose(ev))
  check(String(ev.reason).includes('bad token'), describeClose(ev))
  check(client.terminated === true, 'client not terminated')
  check(client.socket.readyState === window.WebSocket.CLOSED, `readyState ${client.socket.readyState}`)
  same(connects, [], 'connect events')
  same(retries, [], 'retry events')
})

// --------------------------------------------------------------- main ---

async function main () {
  const url = new URLSearchParams(location.search).get('ws')
  if (!url || !/^ws:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+(\/.*)?$/.test(url)) {
    report('the page has a loopback ws URL', false, `?ws=${url} (expected ws://127.0.0.1:PORT/PATH)`)
    return
  }
  try {
    await withTimeout(cjs.preload(FILES), CHECK_TIMEOUT_MS, 'loading the npm sources')
    cjs.packages.eventemitter3 = '/node_modules/eventemitter3/index.js'
    Client = cjs.require(CLIENT_JS)
    check(typeof Client === 'function', `Client.js exported ${typeof Client}`)
  } catch (error) {
    report('the ws-messaging client loads in the page', false, describe(error))
    return
  }
  for (const { name, fn } of checks) {
    const t = new Context(url)
    try {
      await withTimeout(fn(t), CHECK_TIMEOUT_MS, name)
      report(name, true)
    } catch (error) {
      report(name, false, describe(error))
    } finally {
      t.close()
    }
  }
}

main()
  .catch(error => report('the page runs to its end', false, describe(error)))
  .finally(() => {
    const failed = window.results.filter(r => !r.ok).length
    status.textContent = `${window.results.length - failed} passed, ${failed} failed`
    window.done = true
  })
