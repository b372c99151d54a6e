#!/usr/bin/env node
// The ws-messaging@2.0.0 JavaScript client in headless Chromium: opens the
// page browser/index.html (served by tests/browser.rs with the client's npm
// sources) with the conformance server's URL, waits for the page's checks
// and reports them. See README.md.
//
//   node browser.js http://127.0.0.1:PAGE_PORT/ ws://127.0.0.1:PORT/ws
//
// Chromium is Debian's /usr/bin/chromium (`apt-get install chromium`),
// driven by playwright-core, which never downloads a browser of its own.
// Prints `ok - NAME` or `not ok - NAME: REASON` per check, then
// `N passed, M failed`; exits 0 iff every check ran and passed (2 for bad
// arguments or a missing Chromium; a 60 s watchdog exits 1).
'use strict'

const fs = require('node:fs')
const { chromium } = require('playwright-core')

const CHROMIUM = '/usr/bin/chromium'
// Flags for a machine without network beyond loopback: no sandbox (root),
// no GPU, nothing fetched in the background.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
]
const LAUNCH_TIMEOUT_MS = 15000
const PAGE_TIMEOUT_MS = 10000
// The page bounds each check to 5 s; this bounds the whole run.
const RESULTS_TIMEOUT_MS = 30000

const LOOPBACK = '(127\\.0\\.0\\.1|localhost|\\[::1\\]):\\d+'
const USAGE = 'usage: node browser.js http://127.0.0.1:PAGE_PORT/ ws://127.0.0.1:PORT/PATH (loopback only)\n'

const [pageUrl, wsUrl, ...rest] = process.argv.slice(2)
if (rest.length > 0 || !pageUrl || !wsUrl ||
    !new RegExp(`^http://${LOOPBACK}/$`).test(pageUrl) ||
    !new RegExp(`^ws://${LOOPBACK}(/.*)?$`).test(wsUrl)) {
  process.stderr.write(USAGE)
  process.exit(2)
}
if (!fs.existsSync(CHROMIUM)) {
  process.stderr.write(`${CHROMIUM} is missing: install Chromium with \`apt-get install chromium\` (the README's test command does)\n`)
  process.exit(2)
}

setTimeout(() => {
  process.stderr.write('browser.js: watchdog: no result after 60 s\n')
  process.exit(1)
}, 60000).unref()

async function main () {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: LAUNCH_TIMEOUT_MS
  })
  const pageErrors = []
  try {
    const page = await browser.newPage()
    page.on('pageerror', error => pageErrors.push(String(error)))
    page.on('console', message => {
      if (message.type() === 'error') { process.stderr.write(`page console: ${message.text()} (${message.location().url})\n`) }
    })
    const url = `${pageUrl}?ws=${encodeURIComponent(wsUrl)}`
    const response = await page.goto(url, { timeout: PAGE_TIMEOUT_MS })
    if (!response || !response.ok()) {
      throw new Error(`GET ${url}: ${response ? response.status() : 'no response'}`)
    }
    process.stdout.write(`# ${await page.evaluate(() => navigator.userAgent)}\n`)
    await page.waitForFunction(() => window.done === true, null, { timeout: RESULTS_TIMEOUT_MS })
    const results = await page.evaluate(() => window.results)
    // The page's list says the same as window.results, line for line.
    const listed = await page.$$eval('#results li', items => items.map(item => item.textContent))
    const expected = results.map(r => r.ok ? `ok - ${r.name}` : `not ok - ${r.name}: ${r.reason}`)
    if (JSON.stringify(listed) !== JSON.stringify(expected)) {
      results.push({ name: 'the page lists every result', ok: false, reason: `listed ${JSON.stringify(listed)}` })
    }
    for (const error of pageErrors) {
      results.push({ name: 'no uncaught error in the page', ok: false, reason: error })
    }
    return results
  } finally {
    await browser.close()
  }
}

main().then(results => {
  let passed = 0
  let failed = 0
  for (const { name, ok, reason } of results) {
    if (ok) {
      passed++
      process.stdout.write(`ok - ${name}\n`)
    } else {
      failed++
      process.stdout.write(`not ok - ${name}: ${reason}\n`)
    }
  }
  if (results.length === 0) {
    failed++
    process.stdout.write('not ok - the page ran its checks: no result\n')
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`)
  process.exit(failed === 0 ? 0 : 1)
}, error => {
  process.stdout.write(`not ok - the browser ran the page: ${error.stack || error}\n`)
  process.stdout.write('0 passed, 1 failed\n')
  process.exit(1)
})
