#!/usr/bin/env node
// The real ws-messaging@2.0.0 JavaScript client against one or more
// `echo_server` nodes: shout, rooms, count and tell across every node given
// (nodes sharing a Redis with `--redis URL`, or one node on its own), and the
// ordering of one sender's shouts. See README.md.
//
//   node multinode.js ws://127.0.0.1:P1 [ws://127.0.0.1:P2 ...] [--cases a,b,c]
//
// Clients are spread round-robin over the URLs given. `--cases` runs the
// named cases in the order named; without it every case but the interactive
// ones runs. Prints `ok - NAME` or `not ok - NAME: REASON` per case, lines
// starting with `#` for progress, then `N passed, M failed`; exits 0 iff
// nothing failed (2 for bad arguments).
//
// The interactive cases pause for the process that started them: they
// print a line starting with `# ` and wait for an answer line on stdin.
// - `survive-kill` (3 URLs or more): prints `# kill node N` (N = the number
//   of URLs, the last URL's node) and waits for `killed` once that node has
//   been SIGKILLed; then the surviving nodes must keep serving shout, rooms
//   and tell between themselves, and `count()` must drop the dead node's
//   clients within 15 s.
// - `redis-outage`: prints `# kill redis` and waits for `redis-killed`,
//   checks that every node still answers its clients, prints
//   `# restart redis` and waits for `redis-restarted` (the Redis server back
//   on the same port); then cross-node shouts must reach every client again
//   within 20 s, and no client may have been closed.
'use strict'

const assert = require('node:assert/strict')
const readline = require('node:readline')
const WebSocket = require('ws')
const Client = require('ws-messaging/client')

const { createHarness, delay, describeClose, oneLine } = require('./harness')

const SECRET = { token: 'secret' }
const USAGE = 'usage: node multinode.js ws://127.0.0.1:PORT [ws://127.0.0.1:PORT ...] [--cases NAME,NAME] (loopback only)\n'
const LOOPBACK = /^ws:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+(\/.*)?$/

// How long `count()` may take to reflect a connect or disconnect, and to
// forget the connections of a dead node.
const COUNT_CONVERGES_MS = 2000
const DEAD_NODE_FORGOTTEN_MS = 15000
// How long cross-node shouts may take to work again after a Redis restart.
const REDIS_BACK_MS = 20000
// The ordering case: one sender's shouts, received by this many clients.
const ORDER_SENDS = 5000
const ORDER_CLIENTS = 30

function parseArgs (argv) {
  const urls = []
  let cases = null
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--cases') {
      cases = (argv[++i] || '').split(',').filter(Boolean)
    } else if (arg.startsWith('--cases=')) {
      cases = arg.slice('--cases='.length).split(',').filter(Boolean)
    } else if (!arg.startsWith('--') && LOOPBACK.test(arg)) {
      urls.push(arg)
    } else {
      return null
    }
  }
  return urls.length > 0 ? { urls, cases } : null
}

const args = parseArgs(process.argv.slice(2))
if (!args) {
  process.stderr.write(USAGE)
  process.exit(2)
}
const { urls } = args
const nodes = urls.length

// ------------------------------------------------------------- helpers ---

// Every recorded event or close wakes the waiters, which re-check their
// condition: waiting is event-driven, bounded by a timeout.
const waiters = new Set()
function changed () {
  for (const w of [...waiters]) { w() }
}

// Resolves once `cond()` holds; rejects after `ms` with `what` (and the
// `detail()` of that moment).
function until (cond, ms, what, detail = () => '') {
  return new Promise((resolve, reject) => {
    let timer
    const check = () => {
      let ok
      try { ok = cond() } catch (error) { ok = error }
      if (!ok) { return }
      waiters.delete(check)
      clearTimeout(timer)
      if (ok instanceof Error) { reject(ok) } else { resolve() }
    }
    timer = setTimeout(() => {
      waiters.delete(check)
      reject(new Error(`${what} not within ${ms} ms ${detail()}`.trim()))
    }, ms)
    waiters.add(check)
    check()
  })
}

// A fresh tag per use, so that events of other cases never match.
let tagCounter = 0
function tag (name) {
  return `${name}-${process.pid}-${++tagCounter}-${Math.random().toString(36).slice(2, 8)}`
}

// One client with what it received: `shouted`, `room` and `told` events
// (their argument lists) and close events.
class Peer {
  constructor (t, index) {
    this.index = index
    this.node = index % nodes
    this.url = urls[this.node]
    this.shouted = []
    this.room = []
    this.told = []
    this.closes = []
    this.client = new Client(this.url, { WebSocket, auth: SECRET, autoReconnect: false })
    t.clients.push(this.client)
    this.client.on('error', () => {}) // reported through 'close'
    for (const name of ['shouted', 'room', 'told']) {
      this.client.on(name, (...a) => { this[name].push(a); changed() })
    }
    this.client.on('close', ev => { this.closes.push(ev); changed() })
    this.connected = new Promise((resolve, reject) => {
      this.client.once('connect', resolve)
      this.client.once('close', ev => reject(new Error(`client ${index} (node ${this.node + 1}) not connected: ${describeClose(ev)}`)))
    })
  }

  get name () { return `client ${this.index} (node ${this.node + 1})` }

  invoke (name, ...a) { return this.client.invoke(name, ...a) }
  send (name, ...a) { return this.client.send(name, ...a) }

  // The argument lists of this peer's `kind` events whose first argument
  // (after the room name for `room`) is `t`.
  tagged (kind, t) {
    const at = kind === 'room' ? 1 : 0
    return this[kind].filter(a => a[at] === t)
  }
}

// `n` connected clients spread round-robin over the nodes (client i on
// node i % nodes), each with its connection id (`whoami()`).
async function connectPeers (t, n, first = 0) {
  const peers = []
  for (let i = first; i < first + n; i++) { peers.push(new Peer(t, i)) }
  await Promise.all(peers.map(p => p.connected))
  await Promise.all(peers.map(async p => {
    p.id = await p.invoke('whoami')
    assert.equal(typeof p.id, 'string', `${p.name}: whoami returned ${JSON.stringify(p.id)}`)
  }))
  return peers
}

function summary (peers, kind, t) {
  return peers.map(p => `${p.index}:${p.tagged(kind, t).length}`).join(' ')
}

// Waits until every one of `peers` has received the event `kind` whose
// arguments are exactly `expected`.
function allReceived (peers, kind, expected, ms, what) {
  const key = JSON.stringify(expected)
  const has = p => p[kind].some(a => JSON.stringify(a) === key)
  return until(() => peers.every(has), ms, what,
    () => `(missing at ${peers.filter(p => !has(p)).map(p => p.name).join(', ')})`)
}

// A shout marker from `sender` that every one of `peers` receives: whatever
// was delivered before it had its chance to be delivered twice.
async function settle (sender, peers, ms = 5000) {
  const marker = tag('settle')
  await sender.send('shout', marker)
  await allReceived(peers, 'shouted', [marker], ms, `the settle shout ${marker}`)
}

// Asserts that `peer` received the `kind` events tagged `t` exactly as
// `expected` (a list of argument lists; compared in order if `ordered`).
function assertExactly (peer, kind, t, expected, ordered = false) {
  let got = peer.tagged(kind, t).map(a => JSON.stringify(a))
  let want = expected.map(a => JSON.stringify(a))
  if (!ordered) { got = got.sort(); want = want.sort() }
  assert.deepEqual(got, want, `${peer.name}: ${kind} events tagged ${t}`)
}

// Polls `count()` on every observer until all answer `expected`.
async function countConverges (observers, expected, ms, what) {
  const start = Date.now()
  let last
  for (;;) {
    last = await Promise.all(observers.map(p => p.invoke('count')))
    if (last.every(c => c === expected)) { return Date.now() - start }
    if (Date.now() - start > ms) {
      assert.fail(`${what}: count() answered ${JSON.stringify(last)} by node, not ${expected}, after ${ms} ms`)
    }
    await delay(50)
  }
}

function onePerNode (peers, nodeList = [...Array(nodes).keys()]) {
  return nodeList.map(n => peers.find(p => p.node === n))
}

// The interactive cases' questions and answers: `# QUESTION` on stdout,
// then the next stdin line must be `answer`.
let stdinLines = null
function stdinLine () {
  if (!stdinLines) {
    const rl = readline.createInterface({ input: process.stdin })
    const queue = []
    const takers = []
    rl.on('line', line => { if (takers.length) { takers.shift()(line) } else { queue.push(line) } })
    rl.on('close', () => { while (takers.length) { takers.shift()(null) } queue.push(null) })
    stdinLines = { rl, next: () => queue.length ? Promise.resolve(queue.shift()) : new Promise(resolve => takers.push(resolve)) }
  }
  return stdinLines.next()
}
async function ask (question, answer) {
  console.log(`# ${question}`)
  const line = await stdinLine()
  assert.equal(line, answer, `after "# ${question}" expected "${answer}" on stdin`)
}
function closeStdin () {
  if (stdinLines) {
    stdinLines.rl.close()
    process.stdin.destroy()
  }
}

// --------------------------------------------------------------- cases ---

const CASES = {}
function define (name, fn, { timeoutMs = 10000, interactive = false } = {}) {
  CASES[name] = { fn, timeoutMs, interactive }
}

define('shout', async t => {
  // Two clients per node; a shout from a client of each node reaches every
  // client on every node exactly once.
  const peers = await connectPeers(t, 2 * nodes)
  const x = tag('shout')
  const senders = onePerNode(peers)
  for (const s of senders) {
    await s.send('shout', x, s.index, 'a')
    await s.send('shout', x, s.index, 'b')
  }
  for (const s of senders) {
    await allReceived(peers, 'shouted', [x, s.index, 'b'], 5000, `the shout of ${s.name}`)
  }
  await settle(senders[senders.length - 1], peers)
  const expected = senders.flatMap(s => [[x, s.index, 'a'], [x, s.index, 'b']])
  for (const p of peers) { assertExactly(p, 'shouted', x, expected) }
})

define('rooms', async t => {
  // Room R: one member per node; the others are in another room. A member
  // and a non-member send to R: every member receives both, once each; no
  // one else receives anything.
  const peers = await connectPeers(t, 2 * nodes)
  const members = peers.slice(0, nodes)
  const others = peers.slice(nodes)
  const r = tag('room')
  const other = tag('other-room')
  for (const p of members) { assert.equal(await p.invoke('join', r), true, `${p.name} join`) }
  for (const p of others) { assert.equal(await p.invoke('join', other), true, `${p.name} join`) }
  const insider = members[0]
  const outsider = others[others.length - 1]
  await insider.send('to-room', r, 'from-member', insider.index)
  await outsider.send('to-room', r, 'from-outsider', outsider.index)
  await allReceived(members, 'room', [r, 'from-member', insider.index], 5000, 'the member\'s to-room')
  await allReceived(members, 'room', [r, 'from-outsider', outsider.index], 5000, 'the non-member\'s to-room')
  await settle(outsider, peers)
  for (const p of members) {
    assertExactly(p, 'room', 'from-member', [[r, 'from-member', insider.index]])
    assertExactly(p, 'room', 'from-outsider', [[r, 'from-outsider', outsider.index]])
    assert.equal(p.room.length, 2, `${p.name} got ${JSON.stringify(p.room)}`)
  }
  for (const p of others) {
    assert.deepEqual(p.room, [], `${p.name} (not a member) got room events`)
  }
})

define('join-twice', async t => {
  // Joining twice still means one delivery.
  const peers = await connectPeers(t, 2 * nodes)
  const r = tag('room')
  const twice = peers[peers.length - 1]
  const sender = peers[0]
  assert.equal(await twice.invoke('join', r), true, 'first join')
  assert.equal(await twice.invoke('join', r), true, 'second join')
  assert.equal(await sender.invoke('join', r), true, 'sender join')
  assert.equal(await sender.invoke('join', r), true, 'sender second join')
  await sender.send('to-room', r, 'once')
  await allReceived([twice, sender], 'room', [r, 'once'], 5000, 'the to-room')
  await settle(sender, peers)
  for (const p of [twice, sender]) { assertExactly(p, 'room', 'once', [[r, 'once']]) }
  for (const p of peers.slice(1, -1)) { assert.deepEqual(p.room, [], `${p.name} (not a member) got room events`) }
})

define('leave', async t => {
  // Every client joins R; the last one leaves: it no longer receives, the
  // others still do.
  const peers = await connectPeers(t, 2 * nodes)
  const r = tag('room')
  for (const p of peers) { assert.equal(await p.invoke('join', r), true, `${p.name} join`) }
  const sender = peers[0]
  const leaver = peers[peers.length - 1]
  await sender.send('to-room', r, 'before')
  await allReceived(peers, 'room', [r, 'before'], 5000, 'the to-room before the leave')
  assert.equal(await leaver.invoke('leave', r), true, 'leave')
  await sender.send('to-room', r, 'after')
  const stayers = peers.slice(0, -1)
  await allReceived(stayers, 'room', [r, 'after'], 5000, 'the to-room after the leave')
  await settle(sender, peers)
  for (const p of stayers) {
    assertExactly(p, 'room', 'before', [[r, 'before']])
    assertExactly(p, 'room', 'after', [[r, 'after']])
  }
  assertExactly(leaver, 'room', 'before', [[r, 'before']])
  assertExactly(leaver, 'room', 'after', [])
})

define('leave-unjoined', async t => {
  // leave of a room never joined is true, and changes nothing.
  const peers = await connectPeers(t, 2 * nodes)
  const r = tag('room')
  const p = peers[peers.length - 1]
  assert.equal(await p.invoke('leave', tag('never-joined')), true, 'leave of a room never joined')
  assert.equal(await p.invoke('join', r), true, 'join')
  assert.equal(await p.invoke('leave', tag('never-joined')), true, 'leave of another room')
  await peers[0].send('to-room', r, 'still')
  await allReceived([p], 'room', [r, 'still'], 5000, 'the to-room to the member')
  assert.equal(await p.invoke('leave', r), true, 'leave')
  assert.equal(await p.invoke('leave', r), true, 'leave again')
  assert.equal(await p.invoke('whoami'), p.id)
})

define('count', async t => {
  // count() is the number of connected clients over every node: after
  // connects, disconnects, and connects again.
  const peers = await connectPeers(t, 2 * nodes)
  const observers = peers.slice(0, nodes)
  await countConverges(observers, 2 * nodes, COUNT_CONVERGES_MS, `${2 * nodes} clients connected`)
  const leaving = peers.slice(nodes)
  await Promise.all(leaving.map(p => {
    const closed = until(() => p.closes.length > 0, 5000, `${p.name} closed`)
    p.client.close()
    return closed
  }))
  await countConverges(observers, nodes, COUNT_CONVERGES_MS, `${nodes} disconnected`)
  await connectPeers(t, nodes + 1, 2 * nodes)
  await countConverges(observers, 2 * nodes + 1, COUNT_CONVERGES_MS, `${nodes + 1} more connected`)
})

define('tell', async t => {
  // tell(id) from one client reaches exactly the connection with that id,
  // on whichever node, itself included.
  const peers = await connectPeers(t, 2 * nodes)
  const x = tag('tell')
  const sender = peers[0]
  for (const p of peers) { await sender.send('tell', p.id, x, p.index) }
  const second = peers[peers.length - 1]
  await second.send('tell', sender.id, x, 'back')
  for (const p of peers) { await allReceived([p], 'told', [x, p.index], 5000, `the tell to ${p.name}`) }
  await allReceived([sender], 'told', [x, 'back'], 5000, 'the tell back')
  await settle(second, peers)
  for (const p of peers) {
    assertExactly(p, 'told', x, p === sender ? [[x, p.index], [x, 'back']] : [[x, p.index]])
  }
})

define('tell-unknown', async t => {
  // tell to an unknown id delivers nothing; the server keeps serving.
  const peers = await connectPeers(t, 2 * nodes)
  const x = tag('tell')
  const sender = peers[0]
  const unknown = ['A'.repeat(24), 'no-such-connection', '']
  for (const id of unknown) { await sender.send('tell', id, x, 'lost') }
  const target = peers[peers.length - 1]
  await sender.send('tell', target.id, x, 'found')
  await allReceived([target], 'told', [x, 'found'], 5000, 'the tell to a known id after the unknown ones')
  await settle(sender, peers)
  for (const p of peers) {
    assertExactly(p, 'told', x, p === target ? [[x, 'found']] : [])
  }
  assert.equal(await sender.invoke('whoami'), sender.id, 'the sender still served')
  for (const p of peers) { assert.equal(p.closes.length, 0, `${p.name} ${describeClose(p.closes[0])}`) }
})

define('order', async t => {
  // One sender, 5,000 shouts: each of 30 clients over every node receives
  // all of them, in the order sent, each once.
  const peers = await connectPeers(t, ORDER_CLIENTS)
  const x = tag('order')
  const state = peers.map(() => ({ next: 0, error: null }))
  peers.forEach((p, k) => {
    p.client.on('shouted', (tg, i) => {
      if (tg !== x) { return }
      const s = state[k]
      if (s.error === null && i !== s.next) {
        s.error = `${p.name} got shout ${JSON.stringify(i)} where ${s.next} was due`
      }
      s.next++
      changed() // after the count: the peer's own recording ran before it
    })
  })
  const sender = peers[0]
  const sends = []
  for (let i = 0; i < ORDER_SENDS; i++) { sends.push(sender.send('shout', x, i)) }
  await Promise.all(sends)
  const progress = () => `(received: ${state.map(s => s.next).join(' ')})`
  await until(() => {
    const wrong = state.find(s => s.error !== null)
    if (wrong) { return new Error(wrong.error) }
    return state.every(s => s.next >= ORDER_SENDS)
  }, 50000, `all ${ORDER_SENDS} shouts at every client`, progress)
  const end = tag('order-end')
  await sender.send('shout', end)
  await allReceived(peers, 'shouted', [end], 5000, 'the end marker')
  for (const s of state) { assert.equal(s.error, null, s.error) }
  for (const [k, s] of state.entries()) {
    assert.equal(s.next, ORDER_SENDS, `${peers[k].name} received ${s.next} shouts`)
  }
}, { timeoutMs: 60000 })

define('survive-kill', async t => {
  // The last URL's node is SIGKILLed by the process that started this
  // script; the survivors carry on between themselves and forget the dead
  // node's connections.
  assert.ok(nodes >= 3, 'survive-kill needs 3 URLs or more')
  const peers = await connectPeers(t, 2 * nodes)
  const dead = peers.filter(p => p.node === nodes - 1)
  const alive = peers.filter(p => p.node !== nodes - 1)
  const r = tag('room')
  for (const p of peers) { assert.equal(await p.invoke('join', r), true, `${p.name} join`) }
  const before = tag('before')
  await peers[0].send('shout', before)
  await allReceived(peers, 'shouted', [before], 5000, 'a shout before the kill')
  await countConverges(onePerNode(peers), peers.length, COUNT_CONVERGES_MS, 'every client before the kill')

  await ask(`kill node ${nodes}`, 'killed')
  const killedAt = Date.now()
  await until(() => dead.every(p => p.closes.length > 0), 5000, 'the dead node\'s clients closed')
  for (const p of alive) { assert.equal(p.closes.length, 0, `${p.name} ${describeClose(p.closes[0])}`) }

  // shout from a client of each surviving node
  const x = tag('after-kill')
  const senders = onePerNode(alive, [...Array(nodes - 1).keys()])
  for (const s of senders) { await s.send('shout', x, s.index) }
  for (const s of senders) { await allReceived(alive, 'shouted', [x, s.index], 5000, `the shout of ${s.name} after the kill`) }
  // to-room from the second survivor
  await senders[1].send('to-room', r, x, 'room')
  await allReceived(alive, 'room', [r, x, 'room'], 5000, 'the to-room after the kill')
  // tell across the survivors, and to a dead node's client
  await senders[0].send('tell', dead[0].id, x, 'to-the-dead')
  await senders[0].send('tell', senders[1].id, x, 'across')
  await senders[1].send('tell', senders[0].id, x, 'back')
  await allReceived([senders[1]], 'told', [x, 'across'], 5000, 'the tell across the survivors')
  await allReceived([senders[0]], 'told', [x, 'back'], 5000, 'the tell back')
  await settle(senders[0], alive)
  for (const p of alive) {
    assertExactly(p, 'shouted', x, senders.map(s => [x, s.index]))
    assertExactly(p, 'room', x, [[r, x, 'room']])
    const told = p === senders[0] ? [[x, 'back']] : p === senders[1] ? [[x, 'across']] : []
    assertExactly(p, 'told', x, told)
  }
  // count(): the dead node's clients forgotten within 15 s of the kill.
  const remaining = DEAD_NODE_FORGOTTEN_MS - (Date.now() - killedAt)
  await countConverges(senders, alive.length, Math.max(remaining, 0), 'the dead node\'s clients forgotten')
  console.log(`# count() dropped the dead node's clients ${Date.now() - killedAt} ms after the kill`)
  for (const p of alive) { assert.equal(p.closes.length, 0, `${p.name} ${describeClose(p.closes[0])}`) }
}, { timeoutMs: 60000, interactive: true })

define('redis-outage', async t => {
  // The Redis server is SIGKILLed and restarted on the same port by the
  // process that started this script: the nodes keep their clients, and
  // cross-node shouts work again afterwards.
  const peers = await connectPeers(t, 2 * nodes)
  const senders = onePerNode(peers)
  const before = tag('before')
  for (const s of senders) { await s.send('shout', before, s.index) }
  for (const s of senders) { await allReceived(peers, 'shouted', [before, s.index], 5000, `the shout of ${s.name} before the outage`) }

  await ask('kill redis', 'redis-killed')
  // Every node still answers its clients while Redis is down.
  for (const p of peers) { assert.equal(await p.invoke('whoami'), p.id, `${p.name} whoami with Redis down`) }
  await ask('restart redis', 'redis-restarted')
  const restartedAt = Date.now()

  // A probe shout from each node's first client every 200 ms, until one
  // round has reached every client.
  let round = 0
  let done = false
  const probe = tag('probe')
  const complete = k => peers.every(p => senders.every(s => p.shouted.some(a => a[0] === probe && a[1] === k && a[2] === s.index)))
  const probing = (async () => {
    while (!done) {
      const k = round++
      await Promise.all(senders.map(s => s.send('shout', probe, k, s.index)))
      await delay(200)
    }
  })()
  let backAfter
  try {
    await until(() => [...Array(round).keys()].some(complete), REDIS_BACK_MS,
      'a round of cross-node shouts reaching every client after the Redis restart',
      () => `(${round} rounds sent; probes received: ${summary(peers, 'shouted', probe)})`)
    backAfter = Date.now() - restartedAt
  } finally {
    done = true
    await probing
  }
  console.log(`# cross-node shouts reached every client ${backAfter} ms after the Redis restart`)

  // Then every shout reaches every client exactly once.
  const x = tag('after')
  for (const s of senders) { await s.send('shout', x, s.index) }
  for (const s of senders) { await allReceived(peers, 'shouted', [x, s.index], 5000, `the shout of ${s.name} after the outage`) }
  await settle(senders[0], peers)
  for (const p of peers) { assertExactly(p, 'shouted', x, senders.map(s => [x, s.index])) }
  for (const p of peers) {
    assert.equal(p.closes.length, 0, `${p.name} ${describeClose(p.closes[0])}`)
    assert.equal(p.client.connected, true, `${p.name} not connected`)
  }
}, { timeoutMs: 60000, interactive: true })

// ----------------------------------------------------------------- run ---

const names = args.cases || Object.keys(CASES).filter(n => !CASES[n].interactive)
const unknown = names.filter(n => !CASES[n])
if (unknown.length > 0) {
  process.stderr.write(`unknown case(s): ${unknown.join(', ')} (known: ${Object.keys(CASES).join(', ')})\n`)
  process.exit(2)
}
const watchdogMs = names.reduce((sum, n) => sum + CASES[n].timeoutMs + 2000, 10000)
const { test, run } = createHarness({ url: urls[0], secret: SECRET, clientOptions: {}, watchdogMs })
for (const n of names) { test(n, CASES[n].fn, { timeoutMs: CASES[n].timeoutMs }) }
run().finally(closeStdin).catch(error => {
  console.log(`not ok - runner: ${oneLine(error)}`)
  process.exitCode = 1
})
