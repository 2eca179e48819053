'use strict'
// A minimal mini-program runtime for Node: the global `wx` that MemFire's supabase-wechat-stable-v2
// calls, on top of Node's fetch. The SDK (dist/main) touches exactly:
//   wx.request                                   (wefetch.js, every HTTP call)
//   wx.getStorageSync / setStorageSync / removeStorageSync
//                                                (gotrue-js/src/lib/helpers.js: the session, under the
//                                                 key `sb-<host>-auth-token`; the `auth.storage` option
//                                                 is ignored by both 2.0.8 and 2.2.0)
// and, outside auth, wx.connectSocket (realtime) and wx.getFileSystemManager (storage uploads), which
// these tests never reach. The app code of the scenarios also calls wx.login. Nothing else is provided,
// so a new dependency of a future SDK version shows up as "wx.xxx is not a function".
//
// Every simulated phone is a `Device` (its own storage, its own WeChat user and mini-program). The one
// global `wx` dispatches to the device of the current async context (`device.run(fn)`), so an SDK
// client created inside `device.run` keeps talking to that device for its whole life, background
// refresh timers included.

const { AsyncLocalStorage } = require('node:async_hooks')

const context = new AsyncLocalStorage()

/** WeChat caps one storage entry at 1 MB (and a mini-program's storage at 10 MB). */
const MAX_ENTRY_BYTES = 1024 * 1024
const MAX_TOTAL_BYTES = 10 * 1024 * 1024

function currentDevice(api) {
  const device = context.getStore()
  if (!device) {
    throw new Error(`wx.${api} called outside a simulated device: wrap the code in device.run(...)`)
  }
  return device
}

/** Calls a wx callback the way WeChat does: later, and never letting an exception escape into us. */
function callback(fn, arg) {
  if (typeof fn !== 'function') return
  setImmediate(() => {
    try {
      fn(arg)
    } catch (e) {
      // WeChat logs exceptions thrown by callbacks to the console and carries on.
      console.error('[wx-shim] exception in a wx callback:', e)
    }
  })
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !(v instanceof ArrayBuffer) && !ArrayBuffer.isView(v)
}

function toQueryString(obj) {
  return Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(String(obj[k]))}`)
    .join('&')
}

function headerObject(header) {
  // The SDK passes a plain object, or a Map (fetchWithAuth, used for PostgREST).
  if (!header) return {}
  if (header instanceof Map) return Object.fromEntries(header.entries())
  return { ...header }
}

class Device {
  /**
   * @param {object} opts
   * @param {string} opts.appid       the mini-program this phone runs (Referer and wx.login codes)
   * @param {string} opts.user        the WeChat user logged in on this phone (an emulator test user name)
   * @param {string} opts.emulatorUrl the WeChat emulator, which plays WeChat's part for wx.login
   * @param {string} [opts.version]   the mini-program version in the Referer ('devtools' in WeChat DevTools,
   *                                  '0' for develop/trial builds, the release number otherwise)
   * @param {object} [opts.recorder]  gets every wx.request exchange (see lib/recorder.js)
   * @param {string} [opts.name]      a label for failure messages
   */
  constructor({ appid, user, emulatorUrl, version = '0', recorder = null, name = null }) {
    if (!appid || !user || !emulatorUrl) throw new Error('Device needs appid, user and emulatorUrl')
    this.appid = appid
    this.user = user
    this.emulatorUrl = emulatorUrl.replace(/\/$/, '')
    this.version = String(version)
    this.recorder = recorder
    this.name = name || `${user}@${appid}`
    this.storage = new Map() // key -> JSON text (what WeChat keeps is a copy, not a reference)
  }

  get referer() {
    return `https://servicewechat.com/${this.appid}/${this.version}/page-frame.html`
  }

  /** Runs fn with this device as the current `wx` runtime (and everything fn starts, timers included). */
  run(fn) {
    return context.run(this, fn)
  }

  // ---- storage -------------------------------------------------------------------------------

  getStorageSync(key) {
    if (typeof key !== 'string' || key === '') throw new Error('getStorageSync:fail parameter error: key should be a non-empty string')
    // WeChat returns '' for a missing key (the SDK relies on that: `wx.getStorageSync(k) ? JSON.parse(...) : ''`).
    if (!this.storage.has(key)) return ''
    return JSON.parse(this.storage.get(key))
  }

  setStorageSync(key, data) {
    if (typeof key !== 'string' || key === '') throw new Error('setStorageSync:fail parameter error: key should be a non-empty string')
    if (data === undefined) throw new Error('setStorageSync:fail parameter error: data should not be undefined')
    const text = JSON.stringify(data)
    if (Buffer.byteLength(text) > MAX_ENTRY_BYTES) throw new Error('setStorageSync:fail entry size limit reached')
    let total = Buffer.byteLength(text)
    for (const [k, v] of this.storage) if (k !== key) total += Buffer.byteLength(v)
    if (total > MAX_TOTAL_BYTES) throw new Error('setStorageSync:fail storage limit reached')
    this.storage.set(key, text)
  }

  removeStorageSync(key) {
    if (typeof key !== 'string' || key === '') throw new Error('removeStorageSync:fail parameter error: key should be a non-empty string')
    this.storage.delete(key)
  }

  // ---- wx.request ----------------------------------------------------------------------------

  /**
   * wx.request({url, method, data, header, timeout, dataType, responseType, success, fail, complete}).
   * As in WeChat: every HTTP answer, whatever its status, goes to `success` with
   * {data, statusCode, header, cookies, errMsg: 'request:ok'}; `data` is JSON-parsed when dataType is
   * 'json' and the body parses (else the text, '' for an empty body), an ArrayBuffer for
   * responseType 'arraybuffer'. Only network failures and timeouts call `fail({errMsg})`.
   * WeChat sets the Referer itself (https://servicewechat.com/{appid}/{version}/page-frame.html);
   * an app cannot override it.
   */
  request(options = {}) {
    const {
      url,
      data,
      header,
      timeout = 60000,
      dataType = 'json',
      responseType = 'text',
      success,
      fail,
      complete,
    } = options
    const method = String(options.method || 'GET').toUpperCase()
    const controller = new AbortController()
    let aborted = false
    const task = {
      abort() {
        aborted = true
        controller.abort()
      },
      onHeadersReceived() {},
      offHeadersReceived() {},
      onChunkReceived() {},
      offChunkReceived() {},
    }

    const finish = (ok, result) => {
      callback(ok ? success : fail, result)
      callback(complete, result)
    }

    if (typeof url !== 'string' || !/^https?:\/\//i.test(url)) {
      finish(false, { errMsg: `request:fail invalid url "${url}"` })
      return task
    }

    // Headers: names are case-insensitive; the app cannot set Referer.
    const headers = {}
    for (const [k, v] of Object.entries(headerObject(header))) {
      if (v === undefined || v === null) continue
      if (k.toLowerCase() === 'referer') continue
      headers[k] = String(v)
    }
    const hasHeader = (name) => Object.keys(headers).some((k) => k.toLowerCase() === name)
    if (!hasHeader('content-type')) headers['content-type'] = 'application/json'
    headers['Referer'] = this.referer
    const contentType = Object.entries(headers).find(([k]) => k.toLowerCase() === 'content-type')[1]

    // Body: GET/HEAD data goes to the query string; otherwise strings and buffers are sent as they
    // are, objects as JSON (or a form when the content type says so).
    let finalUrl = url
    let body
    if (data !== undefined && data !== null) {
      if (method === 'GET' || method === 'HEAD') {
        const qs = isPlainObject(data) ? toQueryString(data) : String(data)
        if (qs) finalUrl += (finalUrl.includes('?') ? '&' : '?') + qs
      } else if (typeof data === 'string') {
        body = data
      } else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
        body = Buffer.from(data instanceof ArrayBuffer ? data : data.buffer)
      } else if (/application\/x-www-form-urlencoded/i.test(contentType)) {
        body = toQueryString(data)
      } else {
        body = JSON.stringify(data)
      }
    }

    const timer = setTimeout(() => controller.abort(), timeout)
    const startedAt = Date.now()
    const exchange = {
      via: `wx.request (${this.name})`,
      method,
      url: finalUrl,
      requestHeaders: { ...headers },
      requestBody: body === undefined ? undefined : Buffer.isBuffer(body) ? `<${body.length} bytes>` : body,
    }

    fetch(finalUrl, { method, headers, body, signal: controller.signal, redirect: 'follow' })
      .then(async (res) => {
        const buf = Buffer.from(await res.arrayBuffer())
        clearTimeout(timer)
        const text = buf.toString('utf8')
        let resData
        if (responseType === 'arraybuffer') {
          resData = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)
        } else if (dataType === 'json') {
          try {
            resData = JSON.parse(text)
          } catch {
            resData = text
          }
        } else {
          resData = text
        }
        const resHeader = {}
        res.headers.forEach((value, name) => {
          resHeader[name] = value
        })
        const cookies = typeof res.headers.getSetCookie === 'function' ? res.headers.getSetCookie() : []
        this.recorder?.record({
          ...exchange,
          status: res.status,
          responseHeaders: { ...resHeader },
          responseBody: text,
          ms: Date.now() - startedAt,
        })
        finish(true, { data: resData, statusCode: res.status, header: resHeader, cookies, errMsg: 'request:ok' })
      })
      .catch((err) => {
        clearTimeout(timer)
        const reason = aborted ? 'abort' : controller.signal.aborted ? 'timeout' : (err.cause && err.cause.code) || err.message
        this.recorder?.record({ ...exchange, status: 0, responseBody: `request:fail ${reason}`, ms: Date.now() - startedAt })
        finish(false, { errMsg: `request:fail ${reason}` })
      })
    return task
  }

  // ---- wx.login ------------------------------------------------------------------------------

  /**
   * wx.login({success, fail, complete}): WeChat hands the mini-program a fresh single-use code for
   * the logged-in WeChat user; here the emulator issues it (POST /emulator/login-code).
   */
  login(options = {}) {
    const { success, fail, complete } = options
    fetch(`${this.emulatorUrl}/emulator/login-code`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ appid: this.appid, user: this.user }),
    })
      .then(async (res) => {
        const body = await res.json().catch(() => ({}))
        if (!res.ok || !body.code) throw new Error(`emulator login-code ${res.status}: ${JSON.stringify(body)}`)
        const result = { code: body.code, errMsg: 'login:ok' }
        callback(success, result)
        callback(complete, result)
      })
      .catch((err) => {
        const result = { errMsg: `login:fail ${err.message}` }
        callback(fail, result)
        callback(complete, result)
      })
  }

  /**
   * What `<button open-type="getPhoneNumber">` hands its handler when the user allows it:
   * the event, whose `detail.code` weauth exchanges with WeChat (getuserphonenumber).
   */
  async phoneNumberEvent(phone) {
    const res = await fetch(`${this.emulatorUrl}/emulator/phone-code`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ appid: this.appid, phone }),
    })
    const body = await res.json()
    if (!res.ok || !body.code) throw new Error(`emulator phone-code ${res.status}: ${JSON.stringify(body)}`)
    return { type: 'getphonenumber', detail: { errMsg: 'getPhoneNumber:ok', code: body.code } }
  }
}

/** The global `wx`: each method runs against the device of the current async context. */
const wx = Object.freeze({
  request: (options) => currentDevice('request').request(options),
  getStorageSync: (key) => currentDevice('getStorageSync').getStorageSync(key),
  setStorageSync: (key, data) => currentDevice('setStorageSync').setStorageSync(key, data),
  removeStorageSync: (key) => currentDevice('removeStorageSync').removeStorageSync(key),
  login: (options) => currentDevice('login').login(options),
})

/** Installs the global `wx` (idempotent). Must run before an SDK is used (requiring it is fine). */
function installWx() {
  if (globalThis.wx && globalThis.wx !== wx) throw new Error('a different global wx is already installed')
  globalThis.wx = wx
  return wx
}

/** The device of the current async context, or null. */
function activeDevice() {
  return context.getStore() || null
}

module.exports = { installWx, Device, activeDevice, wx }
