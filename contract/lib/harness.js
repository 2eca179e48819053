'use strict'
// Starts what the SDKs talk to: a fresh PostgreSQL database, `weauth-emulator` and
// `weauth serve` (the release binaries, built by scripts/test.sh), each on a free port, with a
// clean environment and a temporary working directory (so no developer .env leaks in). Stops them
// and drops the database when done, also when a test fails or the process is interrupted.
//
// Environment:
//   WEAUTH_BIN                weauth (default: <repo>/$CARGO_TARGET_DIR/release/weauth, with
//                             CARGO_TARGET_DIR defaulting to target)
//   WEAUTH_EMULATOR_BIN       the emulator (default: <repo>/$CARGO_TARGET_DIR/release/weauth-emulator)
//   WEAUTH_TEST_DATABASE_URL  the PostgreSQL server databases are created on
//                             (default postgres://postgres@127.0.0.1:5432/postgres, as for cargo test)
//   CONTRACT_KEEP_LOGS=1      keep the servers' logs (their path is printed) even when all passed

const { spawn, spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const REPO = path.resolve(__dirname, '..', '..')
const DEFAULT_DB_URL = 'postgres://postgres@127.0.0.1:5432/postgres'

/** The mini-program the tests run (named by the Referer), and the default app it is not. */
const APP_ID = 'wxc0471ac7e0000002'
const APP_SECRET = 'contract-mini-program-secret'
const DEFAULT_APP_ID = 'wxc0471ac7e0000001'
const DEFAULT_APP_SECRET = 'contract-default-app-secret'
/** The website (wechat_qr), official-account (wechat_mp) and native-app (wechat_app) apps. */
const QR_APP_ID = 'wxc0471ac7e00000qr'
const MP_APP_ID = 'wxc0471ac7e00000mp'
const NATIVE_APP_ID = 'wxc0471ac7e000app'

const live = new Set() // stacks not yet stopped, for the exit handlers

/**
 * The SMS accounts weauth and the emulator's SMS side both read (the same variables, so they agree
 * on keys, sign names and templates): one Aliyun account, one Tencent Cloud SMS application.
 */
const SMS_ACCOUNTS = {
  WEAUTH_SMS_ALIYUN_ACCESS_KEY_ID: 'LTAIcontractAccessKey',
  WEAUTH_SMS_ALIYUN_ACCESS_KEY_SECRET: 'contract-aliyun-access-key-secret',
  WEAUTH_SMS_ALIYUN_SIGN_NAME: 'weauth合约测试',
  WEAUTH_SMS_ALIYUN_TEMPLATE_CODE: 'SMS_480000001',
  WEAUTH_SMS_TENCENT_SECRET_ID: 'AKIDcontractSecretId',
  WEAUTH_SMS_TENCENT_SECRET_KEY: 'contract-tencent-secret-key',
  WEAUTH_SMS_TENCENT_SDK_APP_ID: '1400480001',
  WEAUTH_SMS_TENCENT_SIGN_NAME: 'weauth合约测试',
  WEAUTH_SMS_TENCENT_TEMPLATE_ID: '2480001',
}

/**
 * weauth's variables for phone sign-in by SMS code through `sms`: `aliyun` or `tencent` (the
 * emulator's SMS side) or `hook` (the caller adds GOTRUE_HOOK_SEND_SMS_*). Codes are sent, not
 * auto-confirmed, and national numbers (13800138000) are mainland ones, as a Chinese app sets it.
 */
function smsEnv(sms, emulatorUrl) {
  if (!['aliyun', 'tencent', 'hook'].includes(sms)) throw new Error(`startStack: sms is aliyun, tencent or hook, not ${JSON.stringify(sms)}`)
  return {
    ...SMS_ACCOUNTS,
    ...(sms === 'hook' ? {} : { GOTRUE_SMS_PROVIDER: sms }),
    WEAUTH_SMS_ALIYUN_ENDPOINT: emulatorUrl,
    WEAUTH_SMS_TENCENT_ENDPOINT: emulatorUrl,
    GOTRUE_SMS_AUTOCONFIRM: 'false',
    WEAUTH_PHONE_DEFAULT_COUNTRY_CODE: '86',
  }
}

/** A release binary: `name` from the target directory, unless the variable `envVar` names one. */
function binary(name, envVar) {
  const targetDir = path.resolve(REPO, process.env.CARGO_TARGET_DIR || 'target')
  const bin = process.env[envVar] ? path.resolve(REPO, process.env[envVar]) : path.join(targetDir, 'release', name)
  if (!fs.existsSync(bin)) {
    throw new Error(`${name} binary not found at ${bin}: run \`cargo build --release --locked -p weauth -p weauth-emulator\` first (or set ${envVar})`)
  }
  return bin
}

const weauthBinary = () => binary('weauth', 'WEAUTH_BIN')
const emulatorBinary = () => binary('weauth-emulator', 'WEAUTH_EMULATOR_BIN')

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// ---- keys ------------------------------------------------------------------------------------

function b64url(obj) {
  return Buffer.from(JSON.stringify(obj)).toString('base64url')
}

/** An HS256 JWT, as GOTRUE_JWT_SECRET signs them. */
function signJwt(payload, secret) {
  const unsigned = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(payload)}`
  const sig = crypto.createHmac('sha256', secret).update(unsigned).digest('base64url')
  return `${unsigned}.${sig}`
}

function projectKeys(secret) {
  const now = Math.floor(Date.now() / 1000)
  const exp = now + 10 * 365 * 24 * 3600
  return {
    anonKey: signJwt({ role: 'anon', iss: 'supabase-demo', iat: now, exp }, secret),
    serviceRoleKey: signJwt({ role: 'service_role', iss: 'supabase-demo', iat: now, exp }, secret),
  }
}

// ---- PostgreSQL ------------------------------------------------------------------------------

function psql(serverUrl, sql) {
  const r = spawnSync('psql', [serverUrl, '-v', 'ON_ERROR_STOP=1', '-X', '-q', '-c', sql], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, PGCONNECT_TIMEOUT: '10' },
    timeout: 60000,
  })
  if (r.error) throw new Error(`psql could not run (${r.error.message}); is the PostgreSQL client installed?`)
  if (r.status !== 0) throw new Error(`psql failed on ${JSON.stringify(sql)}: ${r.stderr || r.stdout}`)
}

function databaseUrl(serverUrl, name) {
  const u = new URL(serverUrl)
  u.pathname = `/${name}`
  return u.toString()
}

// ---- child processes -------------------------------------------------------------------------

class Child {
  constructor(name, bin, args, env, cwd) {
    this.name = name
    this.logPath = path.join(cwd, `${name}.log`)
    this.log = fs.openSync(this.logPath, 'a')
    this.exited = null
    this.proc = spawn(bin, args, { env, cwd, stdio: ['ignore', this.log, this.log] })
    this.proc.on('exit', (code, signal) => {
      this.exited = { code, signal }
    })
    this.proc.on('error', (e) => {
      this.exited = { code: null, signal: null, error: e.message }
    })
  }

  tail(lines = 30) {
    try {
      return fs.readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n')
    } catch {
      return '(no log)'
    }
  }

  async stop() {
    if (!this.exited && this.proc.pid) {
      this.proc.kill('SIGTERM')
      for (let i = 0; i < 50 && !this.exited; i++) await sleep(100)
      if (!this.exited) this.proc.kill('SIGKILL')
    }
    try {
      fs.closeSync(this.log)
    } catch {
      /* closed */
    }
  }

  killNow() {
    if (!this.exited && this.proc.pid) {
      try {
        this.proc.kill('SIGKILL')
      } catch {
        /* gone */
      }
    }
  }
}

async function waitFor(child, url, what, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    if (child.exited) {
      throw new Error(`${child.name} exited (${JSON.stringify(child.exited)}) before ${what} answered. Its log:\n${child.tail()}`)
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) })
      if (res.ok) return
      last = `HTTP ${res.status}`
    } catch (e) {
      last = e.cause?.code || e.message
    }
    await sleep(100)
  }
  throw new Error(`${what} (${url}) did not answer within ${timeoutMs} ms (last: ${last}). ${child.name} log:\n${child.tail()}`)
}

// ---- the stack -------------------------------------------------------------------------------

/**
 * Starts PostgreSQL database + emulator + weauth. `env` adds weauth settings (e.g. GOTRUE_JWT_EXP),
 * `emulatorEnv` the emulator's. `sms` ('aliyun' | 'tencent' | 'hook') turns on phone sign-in by
 * SMS code (see smsEnv; `env` still wins over it) with SMS_ACCOUNTS given to both.
 * Returns { url, authUrl, emulatorUrl, anonKey, serviceRoleKey, jwtSecret, appid, emulator, sql(),
 * stop() }.
 */
async function startStack(options = {}) {
  // A port found free can be taken before the child binds it: retry with new ports then.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startStackOnce(options)
    } catch (e) {
      if (attempt >= 3 || !/Address already in use|AddrInUse|os error 98/i.test(e.message)) throw e
    }
  }
}

async function startStackOnce({ name = 'contract', env: extraEnv = {}, emulatorEnv: extraEmulatorEnv = {}, sms, oauth = false } = {}) {
  const serverUrl = process.env.WEAUTH_TEST_DATABASE_URL || DEFAULT_DB_URL
  const dbName = `weauth_contract_${name.replace(/\W/g, '_')}_${crypto.randomBytes(4).toString('hex')}`
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `weauth-contract-${name}-`))
  const jwtSecret = crypto.randomBytes(32).toString('hex')
  const stack = { name, dbName, serverUrl, workDir, jwtSecret, children: [], dropped: true, stopped: false }
  live.add(stack)

  try {
    psql(serverUrl, `CREATE DATABASE "${dbName}"`)
    stack.dropped = false
    const [emulatorPort, apiPort] = await Promise.all([freePort(), freePort()])
    const wechatEnv = {
      GOTRUE_EXTERNAL_WECHAT_APP_ID: DEFAULT_APP_ID,
      GOTRUE_EXTERNAL_WECHAT_SECRET: DEFAULT_APP_SECRET,
      GOTRUE_EXTERNAL_WECHAT_APPS: `${APP_ID}:${APP_SECRET}`,
      GOTRUE_EXTERNAL_WECHAT_QR_CLIENT_ID: QR_APP_ID,
      GOTRUE_EXTERNAL_WECHAT_QR_SECRET: 'contract-qr-secret',
      GOTRUE_EXTERNAL_WECHAT_MP_CLIENT_ID: MP_APP_ID,
      GOTRUE_EXTERNAL_WECHAT_MP_SECRET: 'contract-mp-secret',
      GOTRUE_EXTERNAL_WECHAT_APP_CLIENT_ID: NATIVE_APP_ID,
      GOTRUE_EXTERNAL_WECHAT_APP_SECRET: 'contract-native-secret',
    }
    // The OAuth providers, WeChat's pages on the emulator and weauth's /callback as the
    // redirect_uri WeChat sends browsers back to.
    const oauthEnv = oauth
      ? {
          GOTRUE_EXTERNAL_WECHAT_QR_ENABLED: 'true',
          GOTRUE_EXTERNAL_WECHAT_MP_ENABLED: 'true',
          GOTRUE_EXTERNAL_WECHAT_APP_ENABLED: 'true',
          GOTRUE_SECURITY_MANUAL_LINKING_ENABLED: 'true',
          API_EXTERNAL_URL: `http://127.0.0.1:${apiPort}/auth/v1`,
          WEAUTH_WECHAT_OPEN_URL: `http://127.0.0.1:${emulatorPort}`,
        }
      : {}
    // Only PATH from our environment: a developer's GOTRUE_*/DATABASE_URL must not leak in.
    const base = { PATH: process.env.PATH, RUST_BACKTRACE: '1', NO_COLOR: '1' }
    const emulatorUrl = `http://127.0.0.1:${emulatorPort}`
    const emulatorEnv = { ...base, ...wechatEnv, ...(sms ? SMS_ACCOUNTS : {}), GOTRUE_LOG_LEVEL: 'info', ...extraEmulatorEnv }
    const weauthEnv = {
      ...base,
      ...wechatEnv,
      DATABASE_URL: databaseUrl(serverUrl, dbName),
      GOTRUE_JWT_SECRET: jwtSecret,
      GOTRUE_API_HOST: '127.0.0.1',
      GOTRUE_API_PORT: String(apiPort),
      GOTRUE_EXTERNAL_WECHAT_API_URL: emulatorUrl,
      WEAUTH_ARGON2_MEMORY_KIB: '1024',
      GOTRUE_LOG_LEVEL: 'info',
      ...oauthEnv,
      ...(sms ? smsEnv(sms, emulatorUrl) : {}),
      ...extraEnv,
    }
    const emulator = new Child('emulator', emulatorBinary(), ['--port', String(emulatorPort), '--host', '127.0.0.1'], emulatorEnv, workDir)
    stack.children.push(emulator)
    const weauth = new Child('weauth', weauthBinary(), ['serve'], weauthEnv, workDir)
    stack.children.push(weauth)

    stack.url = `http://127.0.0.1:${apiPort}`
    stack.authUrl = `${stack.url}/auth/v1`
    stack.emulatorUrl = emulatorUrl
    await Promise.all([
      waitFor(emulator, `${stack.emulatorUrl}/emulator/stats`, 'the WeChat emulator'),
      waitFor(weauth, `${stack.authUrl}/health`, 'weauth /health'),
    ])
  } catch (e) {
    await stopStack(stack, { keepLogs: true })
    throw e
  }

  Object.assign(stack, projectKeys(jwtSecret), {
    appid: APP_ID,
    defaultAppid: DEFAULT_APP_ID,
    qrAppid: QR_APP_ID,
    mpAppid: MP_APP_ID,
    nativeAppid: NATIVE_APP_ID,
    emulator: emulatorClient(stack.emulatorUrl),
    /** Runs SQL on the stack's database (e.g. to age a session as time would). */
    sql: (statement) => psql(databaseUrl(serverUrl, dbName), statement),
    stop: (opts) => stopStack(stack, opts),
    logs: () => stack.children.map((c) => `--- ${c.name} (${c.logPath})\n${c.tail(40)}`).join('\n'),
  })
  return stack
}

async function stopStack(stack, { keepLogs = false } = {}) {
  if (stack.stopped) return
  stack.stopped = true
  await Promise.all(stack.children.map((c) => c.stop()))
  if (!stack.dropped) {
    stack.dropped = true
    try {
      psql(stack.serverUrl, `DROP DATABASE IF EXISTS "${stack.dbName}" WITH (FORCE)`)
    } catch (e) {
      console.error(`[harness] could not drop ${stack.dbName}: ${e.message}`)
    }
  }
  live.delete(stack)
  if (keepLogs || process.env.CONTRACT_KEEP_LOGS) {
    console.error(`[harness] ${stack.name}: weauth and emulator logs kept in ${stack.workDir}`)
  } else {
    fs.rmSync(stack.workDir, { recursive: true, force: true })
  }
}

/** Last resort (process exit, signals): kill children and drop databases synchronously. */
function emergencyCleanup() {
  for (const stack of live) {
    for (const c of stack.children) c.killNow()
    if (!stack.dropped) {
      stack.dropped = true
      try {
        psql(stack.serverUrl, `DROP DATABASE IF EXISTS "${stack.dbName}" WITH (FORCE)`)
      } catch {
        /* best effort */
      }
    }
  }
  live.clear()
}
process.on('exit', emergencyCleanup)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    emergencyCleanup()
    process.exit(130)
  })
}

// ---- the emulator's control API --------------------------------------------------------------

function emulatorClient(base) {
  const post = async (p, body) => {
    const res = await fetch(`${base}${p}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    })
    const json = await res.json()
    if (!res.ok) throw new Error(`emulator ${p} ${res.status}: ${JSON.stringify(json)}`)
    return json
  }
  return {
    loginCode: async (appid, user) => (await post('/emulator/login-code', { appid, user })).code,
    oauthCode: async (appid, user, scope) => (await post('/emulator/oauth-code', { appid, user, scope })).code,
    phoneCode: async (appid, phone) => (await post('/emulator/phone-code', { appid, phone })).code,
    failNext: (spec) => post('/emulator/fail-next', spec),
    /** The SMS the emulator received for `phone` (any form), oldest first: { provider, otp, ... }. */
    smsMessages: async (phone) => {
      const res = await fetch(`${base}/emulator/sms?phone=${encodeURIComponent(phone)}`)
      const json = await res.json()
      if (!res.ok) throw new Error(`emulator /emulator/sms ${res.status}: ${JSON.stringify(json)}`)
      return json.messages
    },
    /** The next send of `provider` ('aliyun' | 'tencent') fails with the provider's `code`. */
    smsFailNext: (provider, code, message) => post('/emulator/sms/fail_next', { provider, code, ...(message ? { message } : {}) }),
    reset: () => post('/emulator/reset'),
    stats: async () => (await fetch(`${base}/emulator/stats`)).json(),
  }
}

/** Raw GoTrue call, for checks the SDKs cannot make (e.g. replaying a refresh token). */
async function gotrue(stack, method, p, { body, token, headers = {} } = {}) {
  const res = await fetch(`${stack.authUrl}${p}`, {
    method,
    headers: {
      apikey: stack.anonKey,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  })
  const text = await res.text()
  let json = null
  try {
    json = JSON.parse(text)
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: json, text, headers: res.headers }
}

module.exports = { startStack, signJwt, gotrue, sleep, APP_ID, DEFAULT_APP_ID, REPO, SMS_ACCOUNTS }
