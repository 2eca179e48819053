'use strict'
// CORS in a real browser: headless Chromium loads a page from another origin (its own HTTP
// server on another port), and that page uses @supabase/supabase-js (the UMD build from
// node_modules, unmodified) to sign up, sign in and call getUser against weauth directly, with
// no proxy. Without weauth's CORS headers the browser blocks every one of these calls.
//
// Needs Debian's chromium (/usr/bin/chromium, or CHROMIUM_PATH); playwright-core only drives it.

const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const { describe, it, before, after } = require('node:test')
const { chromium } = require('playwright-core')
const { startStack } = require('../lib/harness')
const { Recorder } = require('../lib/recorder')

const rec = new Recorder('browser')
const assert = rec.assert
const scenario = (name, fn) => it(name, rec.guard(fn))

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const SUPABASE_UMD = path.join(__dirname, '..', 'node_modules', '@supabase', 'supabase-js', 'dist', 'umd', 'supabase.js')

/** The app's origin: a page and the supabase-js bundle, nothing else. */
function startPageServer() {
  const page = '<!doctype html><meta charset="utf-8"><title>weauth CORS</title><script src="/supabase.js"></script>'
  const server = http.createServer((req, res) => {
    if (req.url === '/supabase.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' })
      fs.createReadStream(SUPABASE_UMD).pipe(res)
    } else {
      res.writeHead(200, { 'content-type': 'text/html' })
      res.end(page)
    }
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

describe('CORS: supabase-js in headless Chromium on another origin', () => {
  let stack
  let pages
  let browser

  before(async () => {
    stack = await startStack({ name: 'browser' })
    pages = await startPageServer()
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
  })
  after(async () => {
    await browser?.close()
    pages?.close()
    if (rec.failed && stack) console.error(stack.logs())
    await stack?.stop({ keepLogs: rec.failed })
  })

  scenario('signUp → signInWithPassword → getUser from http://localhost:<other port>', async () => {
    const page = await browser.newPage()
    const consoleErrors = []
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()))
    // localhost vs 127.0.0.1, and another port: a different origin from weauth's.
    const pageUrl = `http://localhost:${pages.address().port}/`
    await page.goto(pageUrl)
    const apiOrigin = new URL(stack.url).origin
    assert.notEqual(new URL(pageUrl).origin, apiOrigin)

    const result = await page.evaluate(
      async ({ url, anonKey, email }) => {
        const client = window.supabase.createClient(url, anonKey, { auth: { persistSession: false, autoRefreshToken: false } })
        const out = {}
        const password = 'correct horse battery'
        const up = await client.auth.signUp({ email, password })
        out.signUp = { error: up.error && `${up.error.status} ${up.error.message}`, id: up.data.user?.id, session: !!up.data.session }
        const signIn = await client.auth.signInWithPassword({ email, password })
        out.signIn = { error: signIn.error && `${signIn.error.status} ${signIn.error.message}`, id: signIn.data.user?.id }
        const me = await client.auth.getUser()
        out.getUser = { error: me.error && `${me.error.status} ${me.error.message}`, id: me.data.user?.id, email: me.data.user?.email }
        // An error answer must be readable too (status and GoTrue's error code, an exposed header).
        const bad = await client.auth.signInWithPassword({ email, password: 'wrong password' })
        out.wrong = { status: bad.error?.status, code: bad.error?.code }
        // Control: the browser does enforce CORS here. A header weauth does not allow fails the
        // preflight, so fetch rejects; the SDK's calls above went through weauth's policy.
        out.control = await fetch(`${url}/auth/v1/settings`, { headers: { 'x-not-allowed': '1' } }).then(
          () => 'allowed',
          () => 'blocked',
        )
        return out
      },
      { url: stack.url, anonKey: stack.anonKey, email: `browser.${Date.now()}@example.com` },
    )
    assert.equal(result.signUp.error, null, `signUp: ${result.signUp.error}`)
    assert.ok(result.signUp.session, 'autoconfirm: signUp returns a session')
    assert.equal(result.signIn.error, null, `signIn: ${result.signIn.error}`)
    assert.equal(result.signIn.id, result.signUp.id)
    assert.equal(result.getUser.error, null, `getUser: ${result.getUser.error}`)
    assert.equal(result.getUser.id, result.signUp.id)
    assert.deepEqual(result.wrong, { status: 400, code: 'invalid_credentials' })
    assert.equal(result.control, 'blocked', 'a header outside the CORS policy is blocked by the browser')
    // The only CORS complaint in the console is the control request's.
    const corsErrors = consoleErrors.filter((e) => /CORS|Access-Control/i.test(e))
    assert.ok(
      corsErrors.every((e) => e.includes('/auth/v1/settings')),
      `unexpected CORS errors: ${corsErrors.join(' | ')}`,
    )
    await page.close()
  })
})
