'use strict'
// Scenario 6 of issue #4: session lifecycle with short-lived access tokens (GOTRUE_JWT_EXP=4).
//
// How each SDK decides to refresh (read from the installed code):
// * supabase-wechat-stable-v2 2.0.8: getSession() (behind every call) refreshes when the stored
//   expires_at <= now; a background ticker (setInterval 10 s, started at createClient) refreshes
//   when the token expires within 3 ticks (30 s).
// * supabase-wechat-stable-v2 2.2.0: the same lazy check; its ticker runs every 30 s (threshold
//   3 ticks = 90 s), too slow to wait for here.
// * @supabase/supabase-js 2.119: every getSession()/getUser() refreshes when the token expires
//   within EXPIRY_MARGIN_MS = 3 ticks × 30 s = 90 s, so with 4-second tokens every call refreshes
//   first; the ticker (30 s) does the same in the background.
// expires_at is computed on the client (round(now) + expires_in) by the WeChat SDKs and taken from
// the response by supabase-js; either way it is not earlier than weauth's exp, so the tests wait
// for the client's expires_at.

const { describe, it, before, after } = require('node:test')
const { createClient } = require('@supabase/supabase-js')
const { installWx } = require('../wx-shim')
const { startStack, gotrue } = require('../lib/harness')
const { Recorder } = require('../lib/recorder')
const { VARIANTS, storageKey } = require('../lib/sdks')
const { makePhone, expectOk, sleep } = require('../lib/app')

installWx()

const JWT_EXP = 4

const isRefresh = (e) => e.method === 'POST' && /\/token\?grant_type=refresh_token$/.test(e.url)
const isGetUser = (e) => e.method === 'GET' && /\/auth\/v1\/user$/.test(e.url)

/** Every refresh token the recorder saw weauth hand out since `mark`. */
function issuedRefreshTokens(rec, mark) {
  const tokens = []
  for (const e of rec.since(mark)) {
    if (e.status !== 200 || !/\/(token\?grant_type=\w+|wechat_mini\/login|signup)/.test(e.url)) continue
    try {
      const body = JSON.parse(e.responseBody)
      if (body.refresh_token) tokens.push(body.refresh_token)
    } catch {
      /* not JSON */
    }
  }
  return tokens
}

/** After sign-out every refresh token of the session is dead: 400 refresh_token_not_found. */
async function expectRefreshTokensDead(assert, stack, tokens) {
  assert.ok(tokens.length >= 2, `expected the original and at least one rotated refresh token, saw ${tokens.length}`)
  for (const token of tokens) {
    const res = await gotrue(stack, 'POST', '/token?grant_type=refresh_token', { body: { refresh_token: token } })
    assert.equal(res.status, 400, `refresh with a signed-out token ${token.slice(0, 4)}…: ${res.text}`)
    assert.equal(res.body && res.body.error_code, 'refresh_token_not_found', `error_code: ${res.text}`)
  }
}

async function waitUntilExpired(expiresAt) {
  const ms = expiresAt * 1000 - Date.now() + 250
  if (ms > 0) await sleep(ms)
}

describe('6. session lifecycle (GOTRUE_JWT_EXP=4)', () => {
  let stack
  const recorders = []
  before(async () => {
    stack = await startStack({ name: 'session', env: { GOTRUE_JWT_EXP: String(JWT_EXP) } })
  })
  after(async () => {
    const failed = recorders.some((r) => r.failed)
    if (failed && stack) console.error(stack.logs())
    await stack?.stop({ keepLogs: failed })
  })

  for (const sdk of VARIANTS) {
    it(`${sdk.name}: expired token → the SDK refreshes by itself; signOut kills the refresh token`, async () => {
      const rec = new Recorder(`${sdk.name} (session)`)
      recorders.push(rec)
      const assert = rec.assert
      const p = makePhone({ stack, recorder: rec, sdk, user: `sam-${sdk.short}` })
      try {
        await p.run(async () => {
          const start = rec.mark()
          const supabase = p.client()
          const { code } = await p.wxLogin()
          const { session } = expectOk(assert, await rec.call('signInWithWechat', () => supabase.auth.signInWithWechat({ code })), 'signInWithWechat')
          assert.equal(session.expires_in, JWT_EXP, 'expires_in is GOTRUE_JWT_EXP')
          const firstToken = session.access_token

          // The token expires; the next call the app makes must still work.
          await waitUntilExpired(session.expires_at)
          const mark = rec.mark()
          const me = await rec.call('getUser (after expiry)', () => supabase.auth.getUser())
          sdk.appUser(assert, expectOk(assert, me, 'getUser after the access token expired').user)
          const seen = rec.since(mark)
          const refreshAt = seen.findIndex(isRefresh)
          assert.ok(refreshAt >= 0, 'the SDK refreshed the session before calling /user')
          assert.equal(seen[refreshAt].status, 200, 'refresh succeeded')
          assert.ok(seen.findIndex(isGetUser) > refreshAt, 'GET /user came after the refresh')
          const { session: refreshed } = expectOk(assert, await rec.call('getSession', () => supabase.auth.getSession()), 'getSession')
          assert.notEqual(refreshed.access_token, firstToken, 'the access token changed')
          assert.ok(refreshed.expires_at > session.expires_at, 'the new token expires later')

          // Writes keep working after the refresh too.
          const upd = await rec.call('updateUser (refreshed session)', () => supabase.auth.updateUser({ data: { nickname: 'Sam' } }))
          assert.equal(sdk.appUser(assert, expectOk(assert, upd, 'updateUser').user).user_metadata.nickname, 'Sam')

          if (sdk.short === '2.0.8') {
            // 2.0.8's ticker (every 10 s since createClient) refreshes without any app call.
            const quiet = rec.mark()
            const deadline = Date.now() + sdk.refreshTick.everyMs + 3000
            while (Date.now() < deadline && !rec.since(quiet).some(isRefresh)) await sleep(200)
            const background = rec.since(quiet).filter(isRefresh)
            assert.ok(background.length > 0, `no background refresh within ${sdk.refreshTick.everyMs + 3000} ms`)
            assert.equal(background[0].status, 200, 'background refresh succeeded')
            assert.match(background[0].call, /no SDK call/, 'it was not triggered by an app call')
          }

          // The mini-program is closed and relaunched after the token expired: a new client on the
          // same phone restores the session from wx storage and refreshes it.
          await supabase.auth.stopAutoRefresh()
          await waitUntilExpired(JSON.parse(wx.getStorageSync(storageKey(stack.url))).expires_at)
          const relaunchMark = rec.mark()
          const app = p.client()
          const again = await rec.call('getUser (relaunch after expiry)', () => app.auth.getUser())
          sdk.appUser(assert, expectOk(assert, again, 'getUser after relaunch').user)
          assert.ok(rec.since(relaunchMark).some((e) => isRefresh(e) && e.status === 200), 'the relaunched client refreshed the stored session')

          const logoutMark = rec.mark()
          const out = await rec.call('signOut', () => app.auth.signOut())
          assert.equal(out.error, null, `signOut: ${out.error && out.error.message}`)
          const logout = rec.since(logoutMark).filter((e) => e.method === 'POST' && /\/logout/.test(e.url))
          assert.equal(logout.length, 1, 'one POST /logout')
          assert.equal(logout[0].status, 204, 'logout answered 204')
          const after = await rec.call('getSession (signed out)', () => app.auth.getSession())
          assert.equal(expectOk(assert, after, 'getSession').session, null, 'the SDK dropped the session')
          assert.equal(wx.getStorageSync(storageKey(stack.url)), '', 'and removed it from wx storage')

          await expectRefreshTokensDead(assert, stack, issuedRefreshTokens(rec, start))
        })
      } catch (e) {
        throw rec.annotate(e)
      } finally {
        await p.close()
      }
    })
  }

  it('@supabase/supabase-js: refreshes proactively (90 s margin) and after expiry; signOut kills the refresh token', async () => {
    const rec = new Recorder('supabase-js (session)')
    recorders.push(rec)
    const assert = rec.assert
    const supabase = createClient(stack.url, stack.anonKey, {
      auth: { persistSession: true, autoRefreshToken: true },
      global: { fetch: rec.fetch() },
    })
    try {
      const start = rec.mark()
      const email = `session-${Date.now()}@example.com`
      const signUp = await rec.call('signUp', () => supabase.auth.signUp({ email, password: 'correct horse battery' }))
      const { session } = expectOk(assert, signUp, 'signUp')
      assert.equal(session.expires_in, JWT_EXP)
      const firstToken = session.access_token
      const firstRefresh = session.refresh_token

      // Within the 90 s margin already: the next call refreshes first. (Wait for the next second:
      // a token refreshed within the second it was issued has the same claims, so the same JWT.)
      await sleep(1100)
      let mark = rec.mark()
      const me = await rec.call('getUser (token about to expire)', () => supabase.auth.getUser())
      assert.equal(expectOk(assert, me, 'getUser').user.email, email)
      let seen = rec.since(mark)
      assert.ok(seen.findIndex(isRefresh) >= 0 && seen.findIndex(isRefresh) < seen.findIndex(isGetUser), 'refresh before GET /user')
      const { session: s2 } = expectOk(assert, await rec.call('getSession', () => supabase.auth.getSession()), 'getSession')
      assert.notEqual(s2.access_token, firstToken, 'the access token changed')
      assert.notEqual(s2.refresh_token, firstRefresh, 'the refresh token rotated')

      // Past the real expiry of every token issued so far: still works.
      await waitUntilExpired(s2.expires_at)
      mark = rec.mark()
      const upd = await rec.call('updateUser (after expiry)', () => supabase.auth.updateUser({ data: { plan: 'pro' } }))
      assert.equal(expectOk(assert, upd, 'updateUser').user.user_metadata.plan, 'pro')
      seen = rec.since(mark)
      assert.ok(seen.some((e) => isRefresh(e) && e.status === 200), 'refreshed before PUT /user')

      const out = await rec.call('signOut', () => supabase.auth.signOut())
      assert.equal(out.error, null, `signOut: ${out.error && out.error.message}`)
      const gone = await rec.call('getSession (signed out)', () => supabase.auth.getSession())
      assert.equal(expectOk(assert, gone, 'getSession').session, null)
      await expectRefreshTokensDead(assert, stack, issuedRefreshTokens(rec, start))
    } catch (e) {
      throw rec.annotate(e)
    } finally {
      await supabase.auth.stopAutoRefresh()
    }
  })
})
