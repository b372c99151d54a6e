// A minimal CommonJS loader for the browser page (index.html): it lets the
// unmodified npm sources of ws-messaging@2.0.0 (and eventemitter3) run in the
// browser without a bundler. Served by tests/browser.rs, driven by
// tests/interop/browser.js (`cargo test --test browser`).
//
//   await cjs.preload(['/node_modules/a/index.js', ...]) // fetches the files
//   cjs.packages.a = '/node_modules/a/index.js'          // bare name -> file
//   const a = cjs.require('/node_modules/a/index.js')    // runs it, like Node
//
// Each file runs once, as Node runs a module: a function of (exports,
// require, module) with `this` = exports. `require('./x')` is resolved
// against the requiring file's path (`.js` appended when missing), a bare
// name through `packages`; only preloaded files can be required (require is
// synchronous, like Node's).
'use strict'

window.cjs = (function () {
  const sources = new Map() // path -> source text
  const modules = new Map() // path -> module object (also while it runs)
  const packages = {}

  function resolve (from, request) {
    if (request.startsWith('./') || request.startsWith('../')) {
      let path = new URL(request, new URL(from, location.href)).pathname
      if (!path.endsWith('.js')) { path += '.js' }
      return path
    }
    if (Object.prototype.hasOwnProperty.call(packages, request)) { return packages[request] }
    throw new Error(`cannot resolve require(${JSON.stringify(request)}) from ${from}`)
  }

  function load (path) {
    const cached = modules.get(path)
    if (cached) { return cached.exports }
    const source = sources.get(path)
    if (source === undefined) { throw new Error(`${path} was not preloaded`) }
    const module = { exports: {}, id: path }
    modules.set(path, module)
    // sourceURL: stack traces and the devtools name the real file.
    const body = `${source}\n//# sourceURL=${new URL(path, location.href)}`
    // eslint-disable-next-line no-new-func
    const run = new Function('exports', 'require', 'module', body)
    run.call(module.exports, module.exports, request => load(resolve(path, request)), module)
    return module.exports
  }

  async function preload (paths) {
    await Promise.all(paths.map(async path => {
      const response = await fetch(path)
      if (!response.ok) { throw new Error(`GET ${path}: ${response.status}`) }
      sources.set(path, await response.text())
    }))
  }

  return { packages, preload, require: load }
})()
