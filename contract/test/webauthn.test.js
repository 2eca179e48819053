'use strict'
// Issue #16, WebAuthn factors: @supabase/supabase-js (the UMD build, unmodified) in headless
// Chromium with a CDP virtual authenticator (CTAP2, user verification) as the security key.
// `mfa.webauthn.register` enrols a factor and runs the registration ceremony, which raises the
// session to aal2; a new sign-in is aal1 until `mfa.webauthn.authenticate` runs the assertion.
// The relying party is the page's origin (GOTRUE_WEBAUTHN_RP_ID=localhost, _RP_ORIGINS).
//
// Needs Debian's chromium (/usr/bin/chromium, or CHROMIUM_PATH); playwright-core only drives it.

const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const { describe, it, before, after } = require('node:test')
const { chromium } = require('playwright-core')
const { startStack } = require('../lib/harness')
const { Recorder } = require('../lib/recorder')

const rec = new Recorder('webauthn')
const assert = rec.assert
const scenario = (name, fn) => it(name, rec.guard(fn))

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const SUPABASE_UMD = path.join(__dirname, '..', 'node_modules', '@supabase', 'supabase-js', 'dist', 'umd', 'supabase.js')

function startPageServer() {
  const page = '<!doctype html><meta charset="utf-8"><title>weauth WebAuthn</title><script src="/supabase.js"></script>'
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

const claims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString())

describe('16. supabase-js auth.mfa.webauthn in Chromium with a virtual authenticator', () => {
  let stack
  let pages
  let browser
  let origin

  before(async () => {
    pages = await startPageServer()
    // localhost: a secure context for WebAuthn over http, and the rp id.
    origin = `http://localhost:${pages.address().port}`
    stack = await startStack({
      name: 'webauthn',
      env: {
        GOTRUE_MFA_WEB_AUTHN_ENROLL_ENABLED: 'true',
        GOTRUE_MFA_WEB_AUTHN_VERIFY_ENABLED: 'true',
        GOTRUE_WEBAUTHN_RP_ID: 'localhost',
        GOTRUE_WEBAUTHN_RP_DISPLAY_NAME: 'weauth contract',
        GOTRUE_WEBAUTHN_RP_ORIGINS: origin,
      },
    })
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

  scenario('mfa.webauthn.register → aal2; signInWithPassword → mfa.webauthn.authenticate → aal2', async () => {
    const page = await browser.newPage()
    await page.goto(`${origin}/`)
    const cdp = await page.context().newCDPSession(page)
    await cdp.send('WebAuthn.enable')
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'usb',
        hasResidentKey: false,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    })

    const result = await page.evaluate(
      async ({ url, anonKey, email }) => {
        const client = window.supabase.createClient(url, anonKey, { auth: { persistSession: false, autoRefreshToken: false } })
        const err = (e) => e && `${e.status} ${e.code} ${e.message}`
        const out = {}
        const password = 'correct horse battery'
        const up = await client.auth.signUp({ email, password })
        out.signUp = err(up.error)
        const reg = await client.auth.mfa.webauthn.register({ friendlyName: 'virtual key' })
        out.register = { error: err(reg.error), token: reg.data?.access_token }
        const factors = await client.auth.mfa.listFactors()
        out.factors = factors.data?.webauthn?.map((f) => ({ id: f.id, status: f.status, type: f.factor_type }))
        const signIn = await client.auth.signInWithPassword({ email, password })
        out.signIn = { error: err(signIn.error), token: signIn.data.session?.access_token }
        const level = await client.auth.mfa.getAuthenticatorAssuranceLevel()
        out.level = level.data && { current: level.data.currentLevel, next: level.data.nextLevel }
        const auth = await client.auth.mfa.webauthn.authenticate({ factorId: out.factors?.[0]?.id })
        out.authenticate = { error: err(auth.error), token: auth.data?.access_token }
        return out
      },
      { url: stack.url, anonKey: stack.anonKey, email: `webauthn.${Date.now()}@example.com` },
    )
    assert.equal(result.signUp, null, `signUp: ${result.signUp}`)
    assert.equal(result.register.error, null, `register: ${result.register.error}`)
    assert.equal(claims(result.register.token).aal, 'aal2')
    assert.equal(claims(result.register.token).amr[0].method, 'mfa/webauthn')
    assert.equal(result.factors.length, 1)
    assert.equal(result.factors[0].status, 'verified')
    assert.equal(result.signIn.error, null, `signIn: ${result.signIn.error}`)
    assert.equal(claims(result.signIn.token).aal, 'aal1')
    assert.deepEqual(result.level, { current: 'aal1', next: 'aal2' })
    assert.equal(result.authenticate.error, null, `authenticate: ${result.authenticate.error}`)
    const aal2 = claims(result.authenticate.token)
    assert.equal(aal2.aal, 'aal2')
    assert.deepEqual(
      aal2.amr.map((a) => a.method),
      ['mfa/webauthn', 'password'],
    )

    // The virtual authenticator holds the one credential the server stored.
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId })
    assert.equal(credentials.length, 1)
    assert.ok(credentials[0].signCount >= 1, `sign count ${credentials[0].signCount}`)
    await page.close()
  })
})
