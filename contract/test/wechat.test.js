'use strict'
// MemFire's supabase-wechat-stable-v2 (2.0.8 and 2.2.0, unmodified) in a simulated mini-program,
// against `weauth serve` and the WeChat emulator. The app code follows MemFire's documentation:
// a login page (wx.login → signInWithWechat), a profile page (getUser → updateUser) and the
// getPhoneNumber button (wechatBindPhone). Scenarios 1-5 and 7 of issue #4; 6 is in session.test.js.

const { describe, it, before, after, afterEach } = require('node:test')
const { installWx } = require('../wx-shim')
const { startStack } = require('../lib/harness')
const { Recorder } = require('../lib/recorder')
const { VARIANTS, storageKey } = require('../lib/sdks')
const { makePhone, expectAppError, expectOk, PNG_SIGNATURE } = require('../lib/app')

installWx()

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

for (const sdk of VARIANTS) {
  describe(sdk.name, () => {
    const rec = new Recorder(sdk.name)
    const assert = rec.assert
    // Every failure, not only assertions, is reported with the last HTTP exchanges.
    const scenario = (name, fn) => it(name, rec.guard(fn))
    let stack
    let phones = []
    const phone = (user) => {
      const p = makePhone({ stack, recorder: rec, sdk, user: `${user}-${sdk.short}` })
      phones.push(p)
      return p
    }

    before(async () => {
      // One weauth + emulator + database per SDK version, so both can bind the documented number.
      stack = await startStack({ name: `wechat-${sdk.short}` })
    })
    afterEach(async () => {
      await Promise.all(phones.map((p) => p.close()))
      phones = []
    })
    after(async () => {
      if (rec.failed && stack) console.error(stack.logs())
      await stack?.stop({ keepLogs: rec.failed })
    })

    scenario('1. login page → profile page → phone button (MemFire docs flow)', async () => {
      const p = phone('alice')
      await p.run(async () => {
        const supabase = p.client()

        // pages/main/index: login()
        const { code } = await p.wxLogin()
        const signIn = await rec.call('signInWithWechat', () => supabase.auth.signInWithWechat({ code }))
        const { session } = expectOk(assert, signIn, 'signInWithWechat')
        assert.ok(session, 'signInWithWechat returns data.session')
        assert.equal(typeof session.access_token, 'string')
        assert.equal(typeof session.refresh_token, 'string')
        assert.equal(session.token_type, 'bearer')
        assert.ok(session.expires_in > 0 && session.expires_at > Date.now() / 1000, 'expires_in / expires_at')
        assert.match(session.user.id, UUID, 'session.user.id')
        assert.equal(session.user.app_metadata.provider, 'wechat')
        const wechatIdentity = session.user.identities.find((i) => i.provider === 'wechat')
        assert.ok(wechatIdentity, 'the user has a wechat identity')
        // The app came from the Referer wx.request sends (weauth's default app is another one).
        assert.equal(wechatIdentity.identity_data.appid, stack.appid, 'identity_data.appid is the app named by the Referer')
        // The SDK persisted the session in the phone's wx storage.
        const stored = wx.getStorageSync(storageKey(stack.url))
        assert.ok(stored, 'session saved with wx.setStorageSync')
        assert.equal(JSON.parse(stored).access_token, session.access_token)
        const userId = session.user.id

        // pages/me/index: onLoad()
        const first = await rec.call('getUser (profile onLoad)', () => supabase.auth.getUser())
        const u1 = sdk.appUser(assert, expectOk(assert, first, 'getUser').user, `getUser → ${sdk.userShape}`)
        assert.equal(u1.id, userId)
        assert.ok(!u1.phone, `a new WeChat user has no phone yet (got ${JSON.stringify(u1.phone)})`)
        assert.deepEqual(u1.user_metadata, {}, 'no metadata yet')

        // submit(): save nickname and avatar
        const save = await rec.call('updateUser (profile submit)', () =>
          supabase.auth.updateUser({ data: { nickname: '小明', avatar: 'https://cdn.example.com/avatar/xiaoming.png' } }),
        )
        const saved = sdk.appUser(assert, expectOk(assert, save, 'updateUser').user, `updateUser → ${sdk.userShape}`)
        assert.equal(saved.user_metadata.nickname, '小明')

        // onLoad() again: the metadata is there
        const second = await rec.call('getUser (profile onLoad again)', () => supabase.auth.getUser())
        const u2 = sdk.appUser(assert, expectOk(assert, second, 'getUser').user)
        assert.equal(u2.user_metadata.nickname, '小明')
        assert.equal(u2.user_metadata.avatar, 'https://cdn.example.com/avatar/xiaoming.png')

        // getPhoneNumber(e): <button open-type="getPhoneNumber">
        const e = await p.phoneNumberEvent('+8613800138000')
        const bind = await rec.call('wechatBindPhone (getPhoneNumber)', () => supabase.auth.wechatBindPhone({ code: e.detail.code }))
        const bound = sdk.appUser(assert, expectOk(assert, bind, 'wechatBindPhone').user, `wechatBindPhone → ${sdk.userShape}`)
        assert.equal(bound.phone, '8613800138000', 'phone: country code + number, no "+"')
        assert.ok(bound.phone_confirmed_at, 'phone_confirmed_at is set')

        // and the profile page shows it from now on
        const third = await rec.call('getUser (after phone binding)', () => supabase.auth.getUser())
        const u3 = sdk.appUser(assert, expectOk(assert, third, 'getUser').user)
        assert.equal(u3.id, userId)
        assert.equal(u3.phone, '8613800138000')
        assert.ok(u3.phone_confirmed_at, 'phone_confirmed_at after reload')
        assert.equal(u3.user_metadata.nickname, '小明', 'metadata kept')
      })
    })

    scenario('2. phone-authorization login: signInWithWechat then wechatBindPhone in one handler (first-time user)', async () => {
      const p = phone('bob')
      await p.run(async () => {
        const supabase = p.client()
        // pages/phone_login/index: getPhoneNumber(e), exactly as MemFire's doc nests it
        const e = await p.phoneNumberEvent('+8613800138002')
        const outcome = await new Promise((resolve, reject) => {
          wx.login({
            success: async (res) => {
              try {
                const { data, error } = await rec.call('signInWithWechat (phone login)', () => supabase.auth.signInWithWechat({ code: res.code }))
                if (error) return resolve({ step: 'signInWithWechat', error })
                const bind = await rec.call('wechatBindPhone (phone login)', () => supabase.auth.wechatBindPhone({ code: e.detail.code }))
                resolve({ signedIn: data, bind })
              } catch (err) {
                reject(err)
              }
            },
            fail: (err) => reject(new Error(err.errMsg)),
          })
        })
        assert.ok(!outcome.error, `handler stopped at ${outcome.step}: ${outcome.error && outcome.error.message}`)
        const created = outcome.signedIn.session.user
        assert.ok(Date.now() - Date.parse(created.created_at) < 60000, 'a first-time user was created')
        const bound = sdk.appUser(assert, expectOk(assert, outcome.bind, 'wechatBindPhone').user)
        assert.equal(bound.id, created.id)
        assert.equal(bound.phone, '8613800138002')
        assert.ok(bound.phone_confirmed_at, 'phone_confirmed_at')
        const providers = bound.identities.map((i) => i.provider).sort()
        assert.ok(providers.includes('wechat'), `identities: ${providers}`)

        const me = sdk.appUser(assert, expectOk(assert, await rec.call('getUser', () => supabase.auth.getUser()), 'getUser').user)
        assert.equal(me.phone, '8613800138002')
      })
    })

    scenario('3. returning user: a fresh client (new storage) gets the same user and metadata', async () => {
      const first = phone('carol')
      const userId = await first.run(async () => {
        const supabase = first.client()
        const { code } = await first.wxLogin()
        const { session } = expectOk(assert, await rec.call('signInWithWechat (first visit)', () => supabase.auth.signInWithWechat({ code })), 'signInWithWechat')
        expectOk(assert, await rec.call('updateUser', () => supabase.auth.updateUser({ data: { nickname: 'Carol', avatar: 'https://cdn.example.com/c.png' } })), 'updateUser')
        return session.user.id
      })

      // The mini-program is relaunched on the same phone: a new SDK client finds the session in wx
      // storage and is signed in without logging in again.
      await first.close()
      await first.run(async () => {
        const supabase = first.client()
        const me = await rec.call('getUser (relaunch, same storage)', () => supabase.auth.getUser())
        assert.equal(sdk.appUser(assert, expectOk(assert, me, 'getUser after relaunch').user).id, userId, 'session restored from wx storage')
      })

      // The same WeChat user on a fresh install: nothing in storage, a fresh wx.login code.
      const again = phone('carol')
      await again.run(async () => {
        const supabase = again.client()
        const before = await rec.call('getSession (fresh storage)', () => supabase.auth.getSession())
        assert.equal(expectOk(assert, before, 'getSession').session, null, 'a fresh client has no session')
        const { code } = await again.wxLogin()
        const { session } = expectOk(assert, await rec.call('signInWithWechat (returning)', () => supabase.auth.signInWithWechat({ code })), 'signInWithWechat')
        assert.equal(session.user.id, userId, 'same user id for the same WeChat user')
        const me = sdk.appUser(assert, expectOk(assert, await rec.call('getUser (returning)', () => supabase.auth.getUser()), 'getUser').user)
        assert.equal(me.id, userId)
        assert.equal(me.user_metadata.nickname, 'Carol')
        assert.equal(me.user_metadata.avatar, 'https://cdn.example.com/c.png')
      })
    })

    scenario('4. wechatBindAccount for a user who signed up with phone + password', async () => {
      const p = phone('dave')
      const phoneNumber = sdk.short === '2.0.8' ? '+8613900139008' : '+8613900139020'
      const digits = phoneNumber.slice(1)
      const userId = await p.run(async () => {
        const supabase = p.client()
        const signUp = await rec.call('signUp (phone + password)', () => supabase.auth.signUp({ phone: phoneNumber, password: 'correct horse battery' }))
        const { session } = expectOk(assert, signUp, 'signUp')
        assert.ok(session, 'autoconfirm: signUp returns a session')
        assert.equal(session.user.phone, digits)

        const { code } = await p.wxLogin()
        const bind = await rec.call('wechatBindAccount', () => supabase.auth.wechatBindAccount({ code }))
        const user = sdk.appUser(assert, expectOk(assert, bind, 'wechatBindAccount').user, `wechatBindAccount → ${sdk.userShape}`)
        assert.equal(user.id, session.user.id)
        assert.equal(user.phone, digits)
        const providers = user.identities.map((i) => i.provider)
        assert.ok(providers.includes('wechat'), `identities after binding: ${providers}`)
        assert.ok(user.app_metadata.providers.includes('wechat'), `app_metadata.providers: ${user.app_metadata.providers}`)
        return user.id
      })

      // From now on WeChat login signs in that same account.
      const later = phone('dave')
      await later.run(async () => {
        const supabase = later.client()
        const { code } = await later.wxLogin()
        const { session } = expectOk(assert, await rec.call('signInWithWechat (bound account)', () => supabase.auth.signInWithWechat({ code })), 'signInWithWechat')
        assert.equal(session.user.id, userId, 'signInWithWechat finds the phone account')
        assert.equal(session.user.phone, digits)
        // and the password still works
        const pw = await rec.call('signInWithPassword (phone)', () => supabase.auth.signInWithPassword({ phone: phoneNumber, password: 'correct horse battery' }))
        const signedIn = expectOk(assert, pw, 'signInWithPassword')
        assert.ok(signedIn.session && signedIn.session.access_token, `signInWithPassword returns a session, got ${JSON.stringify(signedIn.session)}`)
        assert.equal(signedIn.session.user.id, userId)
      })
    })

    scenario('5. getUnlimitedQRCode returns a PNG', async () => {
      const p = phone('erin')
      await p.run(async () => {
        const supabase = p.client()
        const qr = await rec.call('getUnlimitedQRCode', () =>
          supabase.auth.getUnlimitedQRCode({
            page: 'pages/index/index',
            scene: 'a=1',
            check_path: false,
            env_version: 'develop',
            width: 430,
            auto_color: false,
            line_color: { r: 0, g: 0, b: 0 },
            is_hyaline: false,
          }),
        )
        const { imgBase64 } = expectOk(assert, qr, 'getUnlimitedQRCode')
        assert.equal(typeof imgBase64, 'string', `data.imgBase64 (read by the SDK from data.data.imgBase64), got ${JSON.stringify(qr.data)}`)
        const png = Buffer.from(imgBase64, 'base64')
        assert.ok(png.length > 100, `image of ${png.length} bytes`)
        assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE, 'PNG signature')
      })
    })

    describe('7. error paths as the app sees them', () => {
      scenario('a used wx.login code → 400 wechat_code_used', async () => {
        const p = phone('frank')
        await p.run(async () => {
          const { code } = await p.wxLogin()
          const ok = await rec.call('signInWithWechat', () => p.client().auth.signInWithWechat({ code }))
          expectOk(assert, ok, 'first signInWithWechat')
          const supabase = p.client()
          const reused = await rec.call('signInWithWechat (same code again)', () => supabase.auth.signInWithWechat({ code }))
          expectAppError(assert, rec, reused, { status: 400, code: 'wechat_code_used' })
          assert.equal(reused.data.session, null, 'no session')
        })
      })

      scenario('an invalid code → 400 wechat_code_invalid', async () => {
        const p = phone('grace')
        await p.run(async () => {
          const supabase = p.client()
          const res = await rec.call('signInWithWechat (invalid code)', () => supabase.auth.signInWithWechat({ code: '0a3bXkGa1ZzV8J0notissued00' }))
          expectAppError(assert, rec, res, { status: 400, code: 'wechat_code_invalid' })
          const after = await rec.call('getSession', () => supabase.auth.getSession())
          assert.equal(expectOk(assert, after, 'getSession').session, null, 'nothing was saved')
        })
      })

      scenario('WeChat busy (errcode -1 twice) → 503 wechat_unavailable, then a retry works', async () => {
        const p = phone('heidi')
        await p.run(async () => {
          const supabase = p.client()
          await stack.emulator.failNext({ api: 'jscode2session', errcode: -1, times: 2 })
          const { code } = await p.wxLogin()
          const res = await rec.call('signInWithWechat (WeChat busy)', () => supabase.auth.signInWithWechat({ code }), { timeoutMs: 20000 })
          expectAppError(assert, rec, res, { status: 503, code: 'wechat_unavailable', name: 'AuthRetryableFetchError' })
          // The user taps again: wx.login, sign in.
          const again = await p.wxLogin()
          const ok = await rec.call('signInWithWechat (tap again)', () => supabase.auth.signInWithWechat({ code: again.code }))
          expectOk(assert, ok, 'signInWithWechat after WeChat recovered')
        })
      })

      scenario('a phone number another user has → 422 phone_exists', async () => {
        const owner = phone('ivan')
        await owner.run(async () => {
          const supabase = owner.client()
          expectOk(assert, await rec.call('signInWithWechat', async () => supabase.auth.signInWithWechat({ code: (await owner.wxLogin()).code })), 'signInWithWechat')
          const e = await owner.phoneNumberEvent('+8613700137000')
          expectOk(assert, await rec.call('wechatBindPhone (owner)', () => supabase.auth.wechatBindPhone({ code: e.detail.code })), 'wechatBindPhone')
        })
        const other = phone('judy')
        await other.run(async () => {
          const supabase = other.client()
          expectOk(assert, await rec.call('signInWithWechat', async () => supabase.auth.signInWithWechat({ code: (await other.wxLogin()).code })), 'signInWithWechat')
          const e = await other.phoneNumberEvent('+8613700137000')
          const res = await rec.call('wechatBindPhone (number taken)', () => supabase.auth.wechatBindPhone({ code: e.detail.code }))
          expectAppError(assert, rec, res, { status: 422, code: 'phone_exists' })
          assert.equal(res.data.user, null)
          const me = sdk.appUser(assert, expectOk(assert, await rec.call('getUser', () => supabase.auth.getUser()), 'getUser').user)
          assert.ok(!me.phone, `the number was not bound (phone ${JSON.stringify(me.phone)})`)
        })
      })

      scenario('binding a WeChat account that belongs to another user → 422 identity_already_exists', async () => {
        const wechatUser = phone('peggy')
        await wechatUser.run(async () => {
          const supabase = wechatUser.client()
          expectOk(assert, await rec.call('signInWithWechat (peggy)', async () => supabase.auth.signInWithWechat({ code: (await wechatUser.wxLogin()).code })), 'signInWithWechat')
        })
        // Someone else, signed up by phone, on a phone where peggy's WeChat is logged in.
        const other = phone('peggy')
        await other.run(async () => {
          const supabase = other.client()
          const number = sdk.short === '2.0.8' ? '+8613600136008' : '+8613600136020'
          expectOk(assert, await rec.call('signUp (phone)', () => supabase.auth.signUp({ phone: number, password: 'correct horse battery' })), 'signUp')
          const { code } = await other.wxLogin()
          const res = await rec.call('wechatBindAccount (WeChat taken)', () => supabase.auth.wechatBindAccount({ code }))
          expectAppError(assert, rec, res, { status: 422, code: 'identity_already_exists' })
          assert.equal(res.data.user, null)
        })
      })

      scenario('a QR code request WeChat would refuse → 400 validation_failed', async () => {
        const p = phone('oscar')
        await p.run(async () => {
          const supabase = p.client()
          const qr = await rec.call('getUnlimitedQRCode (page with a leading /)', () =>
            supabase.auth.getUnlimitedQRCode({ page: '/pages/index/index', scene: 'a=1', check_path: false, env_version: 'develop', width: 430 }),
          )
          expectAppError(assert, rec, qr, { status: 400, code: 'validation_failed' })
          assert.equal(qr.data.imgBase64, null)
        })
      })

      scenario('no session: getUser, updateUser, wechatBindPhone, wechatBindAccount', async () => {
        const p = phone('mallory')
        await p.run(async () => {
          const supabase = p.client()
          // getUser sends the anon key, which names no user: weauth answers 403 bad_jwt like GoTrue.
          const user = await rec.call('getUser (signed out)', () => supabase.auth.getUser())
          expectAppError(assert, rec, user, { status: 403, code: 'bad_jwt' })
          assert.equal(user.data.user, null)

          const mark = rec.mark()
          const upd = await rec.call('updateUser (signed out)', () => supabase.auth.updateUser({ data: { nickname: 'x' } }))
          expectAppError(assert, rec, upd, { status: 400, name: 'AuthSessionMissingError' })
          const e = await p.phoneNumberEvent('+8613700137999')
          const bindPhone = await rec.call('wechatBindPhone (signed out)', () => supabase.auth.wechatBindPhone({ code: e.detail.code }))
          expectAppError(assert, rec, bindPhone, { status: 400, name: 'AuthSessionMissingError' })
          const { code } = await p.wxLogin()
          const bindAccount = await rec.call('wechatBindAccount (signed out)', () => supabase.auth.wechatBindAccount({ code }))
          expectAppError(assert, rec, bindAccount, { status: 400, name: 'AuthSessionMissingError' })
          assert.deepEqual(rec.since(mark).map((x) => `${x.method} ${x.url}`), [], 'the SDK answers these itself, without a request')
        })
      })
    })
  })
}
