'use strict'
// Issue #14: @supabase/supabase-js (unmodified) signing in with WeChat through GoTrue's OAuth
// machinery: signInWithOAuth({ provider: 'wechat_qr' }) with the implicit and the PKCE flow
// (exchangeCodeForSession), linkIdentity / unlinkIdentity, and one person being one user across
// the website, the official account, the native app and the mini-program.
//
// The browser is played with fetch(redirect: 'manual'): weauth's /authorize → the emulator's
// qrconnect page → its confirm form → weauth's /callback → redirectTo with the session.

const { describe, it, before, after } = require('node:test')
const { createClient } = require('@supabase/supabase-js')
const { startStack, gotrue } = require('../lib/harness')
const { Recorder } = require('../lib/recorder')
const { expectOk, makePhone } = require('../lib/app')
const { VARIANTS } = require('../lib/sdks')
const { installWx } = require('../wx-shim')

installWx()

const rec = new Recorder('oauth')
const assert = rec.assert
const scenario = (name, fn) => it(name, rec.guard(fn))
const SITE = 'http://localhost:3000'

/** A 302's Location. */
async function follow(url, init = {}) {
  const res = await fetch(url, { redirect: 'manual', ...init })
  assert.equal(res.status, 302, `${init.method || 'GET'} ${url} should redirect, got ${res.status}: ${await res.text()}`)
  return res.headers.get('location')
}

/** The whole browser round trip as test user `user`: the URL the app is sent back to. */
async function wechatRoundTrip(startUrl, user) {
  const wechatUrl = await follow(startUrl)
  const page = await fetch(wechatUrl)
  assert.equal(page.status, 200, 'the WeChat page is shown')
  const html = await page.text()
  assert.match(html, /id="confirm"/)
  const q = new URL(wechatUrl).searchParams
  assert.ok(/^[A-Za-z0-9]{1,128}$/.test(q.get('state')), 'a state WeChat accepts')
  const form = new URLSearchParams({
    appid: q.get('appid'),
    redirect_uri: q.get('redirect_uri'),
    scope: q.get('scope'),
    state: q.get('state'),
    user,
  })
  const callback = await follow(new URL('/connect/confirm', wechatUrl).toString(), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
  })
  assert.match(callback, /\/auth\/v1\/callback\?/, 'WeChat sends the browser to weauth')
  return follow(callback)
}

function fragment(url) {
  return new URLSearchParams(new URL(url).hash.slice(1))
}

describe('14. WeChat OAuth with @supabase/supabase-js', () => {
  let stack
  const client = (flowType) =>
    createClient(stack.url, stack.anonKey, {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false, flowType },
      global: { fetch: rec.fetch() },
    })

  before(async () => {
    stack = await startStack({ name: 'oauth', oauth: true, env: { GOTRUE_SITE_URL: SITE } })
  })
  after(async () => {
    if (rec.failed && stack) console.error(stack.logs())
    await stack?.stop({ keepLogs: rec.failed })
  })

  scenario('signInWithOAuth wechat_qr (implicit): the session in the fragment, then the same user everywhere', async () => {
    const supabase = client('implicit')
    const redirectTo = `${SITE}/welcome`
    const started = await rec.call('signInWithOAuth', () =>
      supabase.auth.signInWithOAuth({ provider: 'wechat_qr', options: { redirectTo, skipBrowserRedirect: true } }),
    )
    const { url } = expectOk(assert, started, 'signInWithOAuth')
    assert.ok(url.startsWith(`${stack.authUrl}/authorize?`), url)
    const back = await wechatRoundTrip(url, 'alice')
    assert.ok(back.startsWith(`${redirectTo}#`), back)
    const f = fragment(back)
    assert.equal(f.get('token_type'), 'bearer')
    assert.equal(f.get('provider_token'), null, "WeChat's own token never reaches the browser")
    const set = await rec.call('setSession', () =>
      supabase.auth.setSession({ access_token: f.get('access_token'), refresh_token: f.get('refresh_token') }),
    )
    const { user } = expectOk(assert, set, 'setSession')
    assert.equal(user.app_metadata.provider, 'wechat_qr')
    assert.equal(user.identities[0].provider, 'wechat_qr')
    assert.ok(user.identities[0].identity_data.unionid, 'the identity carries the unionid')

    // The same test user in the mini-program, through MemFire's supabase-wechat-stable-v2, and
    // in the native app is the same weauth user.
    for (const sdk of VARIANTS) {
      const phone = makePhone({ stack, recorder: rec, sdk, user: 'alice' })
      try {
        await phone.run(async () => {
          const mini = phone.client()
          const { code } = await phone.wxLogin()
          const signIn = await rec.call(`signInWithWechat (${sdk.short})`, () => mini.auth.signInWithWechat({ code }))
          const { session } = expectOk(assert, signIn, 'signInWithWechat')
          assert.equal(session.user.id, user.id, `${sdk.name}: the mini-program login finds the website user`)
        })
      } finally {
        await phone.close()
      }
    }
    const appCode = await stack.emulator.oauthCode(stack.nativeAppid, 'alice', 'snsapi_userinfo')
    const native = await gotrue(stack, 'GET', `/wechat_app/login?code=${appCode}`)
    assert.equal(native.status, 200, JSON.stringify(native.body))
    assert.equal(native.body.user.id, user.id, 'native-app login finds the same user')
  })

  scenario('flowType pkce: ?code= and exchangeCodeForSession, once', async () => {
    const supabase = client('pkce')
    const redirectTo = `${SITE}/pkce`
    const started = await rec.call('signInWithOAuth (pkce)', () =>
      supabase.auth.signInWithOAuth({ provider: 'wechat_qr', options: { redirectTo, skipBrowserRedirect: true } }),
    )
    const { url } = expectOk(assert, started, 'signInWithOAuth')
    assert.match(url, /code_challenge=/, 'supabase-js sends a PKCE challenge')
    const back = await wechatRoundTrip(url, 'bob')
    assert.ok(back.startsWith(`${redirectTo}?code=`), back)
    const code = new URL(back).searchParams.get('code')
    const exchanged = await rec.call('exchangeCodeForSession', () => supabase.auth.exchangeCodeForSession(code))
    const { session, user } = expectOk(assert, exchanged, 'exchangeCodeForSession')
    assert.ok(session.access_token)
    assert.equal(user.identities[0].provider, 'wechat_qr')
    const again = await rec.call('exchangeCodeForSession (again)', () => supabase.auth.exchangeCodeForSession(code))
    assert.ok(again.error, 'an auth code is exchanged once')
  })

  scenario('linkIdentity wechat_mp, unlinkIdentity, and never the last identity', async () => {
    const supabase = client('implicit')
    const email = `carol.${Date.now()}@example.com`
    expectOk(assert, await rec.call('signUp', () => supabase.auth.signUp({ email, password: 'correct horse battery' })), 'signUp')
    const linked = await rec.call('linkIdentity', () =>
      supabase.auth.linkIdentity({ provider: 'wechat_mp', options: { redirectTo: `${SITE}/linked`, skipBrowserRedirect: true } }),
    )
    const { url } = expectOk(assert, linked, 'linkIdentity')
    // supabase-js fetched {url} from /user/identities/authorize: it points at WeChat already.
    const page = await fetch(url)
    assert.equal(page.status, 200)
    const q = new URL(url).searchParams
    assert.equal(q.get('scope'), 'snsapi_userinfo')
    const form = new URLSearchParams({ appid: q.get('appid'), redirect_uri: q.get('redirect_uri'), scope: q.get('scope'), state: q.get('state'), user: 'carol' })
    const callback = await follow(new URL('/connect/confirm', url).toString(), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
    })
    const back = await follow(callback)
    assert.ok(back.startsWith(`${SITE}/linked#access_token=`), back)

    const ids = expectOk(assert, await rec.call('getUserIdentities', () => supabase.auth.getUserIdentities()), 'getUserIdentities')
    const providers = ids.identities.map((i) => i.provider).sort()
    assert.deepEqual(providers, ['email', 'wechat_mp'])
    const mp = ids.identities.find((i) => i.provider === 'wechat_mp')
    expectOk(assert, await rec.call('unlinkIdentity', () => supabase.auth.unlinkIdentity(mp)), 'unlinkIdentity')
    const after = expectOk(assert, await rec.call('getUserIdentities', () => supabase.auth.getUserIdentities()), 'getUserIdentities')
    assert.deepEqual(after.identities.map((i) => i.provider), ['email'])
    const last = await rec.call('unlinkIdentity (last)', () => supabase.auth.unlinkIdentity(after.identities[0]))
    assert.ok(last.error, 'the last identity stays')
    assert.equal(last.error.status, 422)
  })

  scenario('an evil redirectTo lands on the site URL', async () => {
    const supabase = client('implicit')
    const started = await supabase.auth.signInWithOAuth({
      provider: 'wechat_qr',
      options: { redirectTo: 'https://evil.example.net/steal', skipBrowserRedirect: true },
    })
    const back = await wechatRoundTrip(expectOk(assert, started, 'signInWithOAuth').url, 'dave')
    assert.ok(back.startsWith(`${SITE}#access_token=`), back)
  })
})
