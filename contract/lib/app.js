'use strict'
// Helpers shared by the test files: simulated phones running SDK clients, and the checks on
// `{ data, error }` that app code relies on.

const { Device, activeDevice } = require('../wx-shim')

/**
 * A simulated phone: a Device (own storage, WeChat user, mini-program) plus the SDK clients created on
 * it. `phone.run(fn)` runs app code on it; clients created with `phone.client()` inside run() are
 * stopped by `phone.close()`.
 */
function makePhone({ stack, recorder, sdk, user, name }) {
  const device = new Device({
    appid: stack.appid,
    user,
    emulatorUrl: stack.emulatorUrl,
    recorder,
    name: name || `${user}, ${sdk.short}`,
  })
  const clients = []
  return {
    device,
    run: (fn) => device.run(fn),
    /** `createClient(url, anonKey, options)` as lib/supabase.js in a mini-program does it. */
    client(options) {
      if (activeDevice() !== device) throw new Error('create SDK clients inside phone.run()')
      const supabase = options === undefined ? sdk.module.createClient(stack.url, stack.anonKey) : sdk.module.createClient(stack.url, stack.anonKey, options)
      clients.push(supabase)
      return supabase
    },
    /** wx.login as app code calls it, promisified. */
    wxLogin() {
      return new Promise((resolve, reject) => {
        globalThis.wx.login({
          success: (res) => resolve(res),
          fail: (err) => reject(new Error(err.errMsg)),
        })
      })
    },
    /** The event `<button open-type="getPhoneNumber">` passes to its handler. */
    phoneNumberEvent: (phone) => device.phoneNumberEvent(phone),
    async close() {
      await Promise.all(clients.map((c) => c.auth.stopAutoRefresh?.()))
    },
  }
}

/**
 * Checks an SDK error the way an app uses it: `error` is set, has the HTTP status, and a non-empty
 * message to show (wx.showToast({ title: error.message })). `code` is the GoTrue error_code weauth
 * answered; the message must carry it or be the msg of the response that had it.
 */
function expectAppError(assert, recorder, result, { status, code, name }) {
  assert.ok(result && typeof result === 'object', 'the SDK returns { data, error }')
  const { error } = result
  assert.ok(error, `expected an error (${status} ${code || ''}), got data ${JSON.stringify(result.data)}`)
  assert.equal(error.status, status, `error.status (error: ${error.name}: ${error.message})`)
  assert.equal(typeof error.message, 'string', 'error.message is a string')
  assert.ok(error.message.trim().length > 0, 'error.message is not empty')
  if (name) assert.equal(error.name, name, `error.name (message: ${error.message})`)
  if (code) {
    const answer = [...recorder.exchanges].reverse().find((e) => e.status === status)
    assert.ok(answer, `a ${status} response was recorded`)
    let body = {}
    try {
      body = JSON.parse(answer.responseBody)
    } catch {
      /* checked below */
    }
    assert.equal(body.error_code || body.code, code, `weauth's error_code in the ${status} response`)
    const shown = error.message.includes(code) || (body.msg && error.message === body.msg) || (body.message && error.message === body.message)
    assert.ok(shown, `error.message should carry weauth's answer (${code} / ${body.msg || body.message}), got ${JSON.stringify(error.message)}`)
  }
  return error
}

/** Asserts `{ error: null }`, showing the error if there is one. */
function expectOk(assert, result, what) {
  assert.ok(result && typeof result === 'object', `${what}: the SDK returns { data, error }`)
  assert.equal(
    result.error,
    null,
    `${what} failed: ${result.error && `${result.error.name} ${result.error.status}: ${result.error.message}`}`,
  )
  return result.data
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

module.exports = { makePhone, expectAppError, expectOk, PNG_SIGNATURE, sleep }
