'use strict'
// Records every HTTP exchange the SDKs make (through the wx shim's wx.request and through the fetch
// given to supabase-js), tagged with the SDK call that made it, so a failing assertion can say which
// call, which request and which response differed.

const { AsyncLocalStorage } = require('node:async_hooks')
const nodeAssert = require('node:assert/strict')

const KEEP = 200 // exchanges kept in memory
const SHOW = 6 // exchanges shown in a failure message
const BODY_CHARS = 600

const callContext = new AsyncLocalStorage()
const ANNOTATED = Symbol('annotated with exchanges')

const SECRET_PARAMS = new Set(['code', 'refresh_token', 'access_token', 'token', 'apikey', 'secret', 'js_code'])

function redactUrl(url) {
  try {
    const u = new URL(url)
    for (const [k, v] of u.searchParams) {
      if (SECRET_PARAMS.has(k.toLowerCase())) u.searchParams.set(k, v.slice(0, 4) + '…')
    }
    return decodeURIComponent(u.toString())
  } catch {
    return String(url)
  }
}

function redactText(text) {
  if (text === undefined || text === null) return ''
  return String(text)
    .replace(/eyJ[\w-]+\.[\w-]+\.[\w-]+/g, (jwt) => `<jwt ${describeJwt(jwt)}>`)
    .replace(/("refresh_token"\s*:\s*")([^"]{4})[^"]*"/g, '$1$2…"')
    .replace(/("password"\s*:\s*")[^"]*"/g, '$1…"')
}

function truncate(text, n = BODY_CHARS) {
  text = String(text)
  return text.length > n ? `${text.slice(0, n)}… (${text.length} chars)` : text
}

/** "anon", "service_role", "authenticated sub=1234abcd exp=+3s": what a token is, not what it says. */
function describeJwt(jwt) {
  try {
    const payload = JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'))
    const parts = [payload.role || 'no-role']
    if (payload.sub) parts.push(`sub=${String(payload.sub).slice(0, 8)}`)
    if (payload.exp) parts.push(`exp=${payload.exp - Math.floor(Date.now() / 1000) >= 0 ? '+' : ''}${payload.exp - Math.floor(Date.now() / 1000)}s`)
    return parts.join(' ')
  } catch {
    return 'unparsable'
  }
}

function authOf(headers = {}) {
  const entry = Object.entries(headers).find(([k]) => k.toLowerCase() === 'authorization')
  if (!entry) return 'none'
  const m = /^Bearer\s+(.+)$/i.exec(entry[1])
  return m ? describeJwt(m[1]) : 'non-bearer'
}

class Recorder {
  constructor(name) {
    this.name = name
    this.exchanges = []
    this.failed = false
  }

  /** Called by the shim and the fetch wrapper. */
  record(exchange) {
    const call = callContext.getStore()
    this.exchanges.push({ at: new Date(), call: call ? call.label : '(no SDK call: background/harness)', ...exchange })
    if (this.exchanges.length > KEEP) this.exchanges.splice(0, this.exchanges.length - KEEP)
  }

  /** Exchanges since `mark` (an index from `recorder.mark()`), optionally filtered. */
  since(mark, filter = () => true) {
    return this.exchanges.slice(mark).filter(filter)
  }

  mark() {
    return this.exchanges.length
  }

  format(e) {
    const lines = [
      `  [${e.call}] via ${e.via}`,
      `    ${e.method} ${redactUrl(e.url)}  (Authorization: ${authOf(e.requestHeaders)})`,
    ]
    if (e.requestBody !== undefined) lines.push(`    request body: ${truncate(redactText(e.requestBody))}`)
    lines.push(`    -> ${e.status || 'network failure'}${e.ms !== undefined ? ` in ${e.ms} ms` : ''}: ${truncate(redactText(e.responseBody))}`)
    return lines.join('\n')
  }

  dump(n = SHOW) {
    const last = this.exchanges.slice(-n)
    if (last.length === 0) return `No HTTP exchanges recorded yet (${this.name}).`
    return `Last ${last.length} HTTP exchanges of ${this.name} (oldest first):\n${last.map((e) => this.format(e)).join('\n')}`
  }

  /** Annotates an error with the current SDK call and the last exchanges, marks the run failed. */
  annotate(err, label) {
    this.failed = true
    if (err === null || typeof err !== 'object') err = new Error(String(err))
    if (err[ANNOTATED]) return err
    err[ANNOTATED] = true
    const where = label || callContext.getStore()?.label
    const extra = `${where ? `\nWhile: ${where}` : ''}\n${this.dump()}`
    try {
      err.message = `${err.message}${extra}`
    } catch {
      /* frozen */
    }
    if (err.generatedMessage !== undefined) err.generatedMessage = false
    return err
  }

  /**
   * Wraps a test body so that any failure, not only assertions (e.g. a TypeError on a missing
   * field), carries the last exchanges: `it('…', rec.guard(async () => { … }))`.
   */
  guard(fn) {
    const recorder = this
    return async function guarded(...args) {
      try {
        return await fn.apply(this, args)
      } catch (e) {
        throw recorder.annotate(e)
      }
    }
  }

  /**
   * Runs one SDK call as app code would (`const { data, error } = await supabase.auth.x(...)`),
   * labelled for the failure messages. The SDK must settle within `timeoutMs` and must not throw:
   * apps only ever look at `{data, error}`.
   */
  async call(label, fn, { timeoutMs = 15000 } = {}) {
    let timer
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(this.annotate(new Error(`SDK call did not settle within ${timeoutMs} ms (it hangs)`), label)), timeoutMs)
    })
    try {
      return await Promise.race([
        callContext.run({ label }, async () => {
          try {
            return await fn()
          } catch (e) {
            const err = new Error(`SDK call threw instead of returning { error }: ${e && e.stack ? e.stack : e}`)
            throw this.annotate(err, label)
          }
        }),
        timeout,
      ])
    } finally {
      clearTimeout(timer)
    }
  }

  /** A fetch for supabase-js (`createClient(url, key, { global: { fetch } })`) that records. */
  fetch(via = 'supabase-js fetch') {
    return async (input, init = {}) => {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.toString() : input.url
      const method = (init.method || (typeof input === 'object' && input.method) || 'GET').toUpperCase()
      const requestHeaders = {}
      new Headers(init.headers || (typeof input === 'object' && input.headers) || {}).forEach((v, k) => {
        requestHeaders[k] = v
      })
      const startedAt = Date.now()
      const base = {
        via,
        method,
        url,
        requestHeaders,
        requestBody: typeof init.body === 'string' ? init.body : init.body ? '<non-text body>' : undefined,
      }
      let res
      try {
        res = await fetch(input, init)
      } catch (e) {
        this.record({ ...base, status: 0, responseBody: `fetch failed: ${e.cause?.code || e.message}`, ms: Date.now() - startedAt })
        throw e
      }
      let text = ''
      try {
        text = await res.clone().text()
      } catch (e) {
        text = `<unreadable: ${e.message}>`
      }
      const responseHeaders = {}
      res.headers.forEach((v, k) => {
        responseHeaders[k] = v
      })
      this.record({ ...base, status: res.status, responseHeaders, responseBody: text, ms: Date.now() - startedAt })
      return res
    }
  }

  /**
   * node:assert/strict whose failures carry the last exchanges:
   * `const assert = recorder.assert; assert.equal(user.phone, '8613800138000', 'bound phone')`.
   */
  get assert() {
    const recorder = this
    const wrap = (fn) =>
      function wrapped(...args) {
        try {
          return fn.apply(nodeAssert, args)
        } catch (e) {
          throw recorder.annotate(e)
        }
      }
    const wrappedOk = wrap(nodeAssert)
    return new Proxy(wrappedOk, {
      get(_, prop) {
        const v = nodeAssert[prop]
        if (typeof v === 'function' && !/^[A-Z]/.test(String(prop))) return wrap(v)
        return v
      },
    })
  }
}

module.exports = { Recorder, redactUrl, redactText, describeJwt }
