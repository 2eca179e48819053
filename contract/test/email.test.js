'use strict'
// Issue 12: the e-mail family through @supabase/supabase-js (unmodified) against weauth and a
// real SMTP server (scripts/smtp-sink.sh: aiosmtpd, with a JSON API to read what arrived).

const { describe, it, before, after } = require('node:test')
const { spawn } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')
const { createClient } = require('@supabase/supabase-js')
const { startStack } = require('../lib/harness')
const { Recorder } = require('../lib/recorder')
const { expectOk } = require('../lib/app')

const rec = new Recorder('email')
const assert = rec.assert
const scenario = (name, fn) => it(name, rec.guard(fn))
const REPO = path.resolve(__dirname, '..', '..')
const TEMPLATE = path.join(REPO, 'tests', 'api', 'fixtures', 'mail-template.html')

function startSink() {
  return new Promise((resolve, reject) => {
    const proc = spawn('bash', [path.join(REPO, 'scripts', 'smtp-sink.sh')], { stdio: ['pipe', 'pipe', 'inherit'] })
    proc.on('error', reject)
    readline.createInterface({ input: proc.stdout }).once('line', (line) => {
      const smtp = /smtp=(\d+)/.exec(line)
      const http = /http=(\d+)/.exec(line)
      if (!smtp || !http) return reject(new Error(`SMTP sink said ${line}`))
      resolve({ proc, smtpPort: smtp[1], api: `http://127.0.0.1:${http[1]}` })
    })
  })
}

const unescape = (s) => s.replace(/&amp;/g, '&').replace(/&#43;/g, '+')

describe('12. e-mail through @supabase/supabase-js', () => {
  let stack, sink
  const client = (key) =>
    createClient(stack.url, key, {
      auth: { persistSession: false, autoRefreshToken: false },
      global: { fetch: rec.fetch() },
    })
  const fresh = (label) => `${label}.${Date.now()}.${Math.random().toString(36).slice(2, 8)}@example.com`

  async function lastMail(to) {
    const res = await fetch(`${sink.api}/messages?to=${encodeURIComponent(to)}`)
    const mails = await res.json()
    assert.ok(mails.length > 0, `a mail to ${to}`)
    const mail = mails[mails.length - 1]
    const code = /class="code">(\d+)</.exec(mail.html)[1]
    const link = unescape(/href="([^"]+)"/.exec(mail.html)[1])
    return { ...mail, code, link, count: mails.length }
  }

  before(async () => {
    sink = await startSink()
    const templates = {}
    for (const t of ['INVITE', 'CONFIRMATION', 'RECOVERY', 'MAGIC_LINK', 'EMAIL_CHANGE', 'REAUTHENTICATION']) {
      templates[`GOTRUE_MAILER_TEMPLATES_${t}`] = TEMPLATE
    }
    stack = await startStack({
      name: 'email',
      env: {
        GOTRUE_SMTP_HOST: '127.0.0.1',
        GOTRUE_SMTP_PORT: sink.smtpPort,
        GOTRUE_SMTP_ADMIN_EMAIL: 'noreply@example.com',
        GOTRUE_SMTP_MAX_FREQUENCY: '1ms',
        GOTRUE_MAILER_AUTOCONFIRM: 'false',
        GOTRUE_SITE_URL: 'http://localhost:3000',
        ...templates,
      },
    })
  })
  after(async () => {
    if (rec.failed && stack) console.error(stack.logs())
    await stack?.stop({ keepLogs: rec.failed })
    sink?.proc.stdin.end()
    sink?.proc.kill()
  })

  scenario('signUp → mail → verifyOtp signs in; the link works too', async () => {
    const supabase = client(stack.anonKey)
    const email = fresh('signup')
    const up = expectOk(assert, await rec.call('signUp', () => supabase.auth.signUp({ email, password: 'secret-pw-1' })), 'signUp')
    assert.equal(up.session, null, 'no session before confirmation')
    assert.equal(up.user.email, email)
    const mail = await lastMail(email)
    assert.equal(mail.subject, 'Confirm your email address')
    const v = expectOk(assert, await rec.call('verifyOtp', () => supabase.auth.verifyOtp({ email, token: mail.code, type: 'signup' })), 'verifyOtp')
    assert.ok(v.session.access_token)
    assert.ok(v.user.email_confirmed_at)

    const other = fresh('link')
    expectOk(assert, await supabase.auth.signUp({ email: other, password: 'secret-pw-1' }), 'signUp 2')
    const linkMail = await lastMail(other)
    const u = new URL(linkMail.link)
    const res = await fetch(`${stack.url}${u.pathname}${u.search}`, { redirect: 'manual' })
    assert.equal(res.status, 303)
    const location = res.headers.get('location')
    assert.match(location, /^http:\/\/localhost:3000#access_token=/)
    const fragment = new URLSearchParams(location.split('#')[1])
    const me = expectOk(assert, await supabase.auth.getUser(fragment.get('access_token')), 'getUser')
    assert.equal(me.user.email, other)
  })

  scenario('signInWithOtp({ email }): code and magic link', async () => {
    const supabase = client(stack.anonKey)
    const email = fresh('otp')
    expectOk(assert, await rec.call('signInWithOtp (new)', () => supabase.auth.signInWithOtp({ email })), 'signInWithOtp new')
    const first = await lastMail(email)
    expectOk(assert, await supabase.auth.verifyOtp({ email, token: first.code, type: 'email' }), 'verifyOtp email')
    expectOk(assert, await rec.call('signInWithOtp', () => supabase.auth.signInWithOtp({ email })), 'signInWithOtp')
    const magic = await lastMail(email)
    assert.equal(magic.subject, 'Your sign-in link')
    const hash = new URL(magic.link).searchParams.get('token')
    const v = expectOk(assert, await rec.call('verifyOtp token_hash', () => supabase.auth.verifyOtp({ token_hash: hash, type: 'magiclink' })), 'verifyOtp hash')
    assert.equal(v.user.email, email)
    const { error } = await supabase.auth.signInWithOtp({ email: fresh('nobody'), options: { shouldCreateUser: false } })
    assert.equal(error?.code, 'otp_disabled')
  })

  scenario('resetPasswordForEmail → verifyOtp recovery → updateUser → sign in', async () => {
    const supabase = client(stack.anonKey)
    const email = fresh('reset')
    expectOk(assert, await supabase.auth.signInWithOtp({ email }), 'create')
    expectOk(assert, await supabase.auth.verifyOtp({ email, token: (await lastMail(email)).code, type: 'email' }), 'confirm')
    expectOk(assert, await rec.call('resetPasswordForEmail', () => supabase.auth.resetPasswordForEmail(email, { redirectTo: 'http://localhost:3000/reset' })), 'reset')
    const mail = await lastMail(email)
    assert.equal(new URL(mail.link).searchParams.get('redirect_to'), 'http://localhost:3000/reset')
    const v = expectOk(assert, await supabase.auth.verifyOtp({ email, token: mail.code, type: 'recovery' }), 'verifyOtp recovery')
    const authed = client(stack.anonKey)
    await authed.auth.setSession({ access_token: v.session.access_token, refresh_token: v.session.refresh_token })
    expectOk(assert, await rec.call('updateUser password', () => authed.auth.updateUser({ password: 'new-secret-pw-2' })), 'updateUser')
    expectOk(assert, await supabase.auth.signInWithPassword({ email, password: 'new-secret-pw-2' }), 'signIn new password')
  })

  scenario('updateUser({ email }) with secure change, and resend', async () => {
    const supabase = client(stack.anonKey)
    const email = fresh('change-old')
    expectOk(assert, await supabase.auth.signUp({ email, password: 'secret-pw-1' }), 'signUp')
    const v = expectOk(assert, await supabase.auth.verifyOtp({ email, token: (await lastMail(email)).code, type: 'signup' }), 'confirm')
    const authed = client(stack.anonKey)
    await authed.auth.setSession({ access_token: v.session.access_token, refresh_token: v.session.refresh_token })
    const next = fresh('change-new')
    const upd = expectOk(assert, await rec.call('updateUser email', () => authed.auth.updateUser({ email: next })), 'updateUser email')
    assert.equal(upd.user.new_email, next)
    expectOk(assert, await rec.call('resend email_change', () => supabase.auth.resend({ type: 'email_change', email })), 'resend')
    const toNew = await lastMail(next)
    const toOld = await lastMail(email)
    assert.equal(toNew.count, 2, 'sent and resent')
    const first = await supabase.auth.verifyOtp({ email: next, token: toNew.code, type: 'email_change' })
    assert.equal(first.error, null)
    const second = expectOk(assert, await supabase.auth.verifyOtp({ email, token: toOld.code, type: 'email_change' }), 'second confirmation')
    assert.equal(second.user.email, next)
  })

  scenario('admin.inviteUserByEmail and admin.generateLink', async () => {
    const admin = client(stack.serviceRoleKey)
    const email = fresh('invite')
    const inv = expectOk(assert, await rec.call('inviteUserByEmail', () => admin.auth.admin.inviteUserByEmail(email, { data: { name: 'Ada' } })), 'invite')
    assert.equal(inv.user.email, email)
    assert.ok(inv.user.invited_at)
    const mail = await lastMail(email)
    const anon = client(stack.anonKey)
    expectOk(assert, await anon.auth.verifyOtp({ email, token: mail.code, type: 'invite' }), 'verify invite')

    const other = fresh('generated')
    const gen = expectOk(assert, await rec.call('generateLink', () => admin.auth.admin.generateLink({ type: 'signup', email: other, password: 'secret-pw-1' })), 'generateLink')
    assert.equal(gen.properties.verification_type, 'signup')
    assert.ok(gen.properties.action_link.includes(`token=${gen.properties.hashed_token}`))
    assert.equal(gen.user.email, other)
    expectOk(assert, await anon.auth.verifyOtp({ email: other, token: gen.properties.email_otp, type: 'signup' }), 'verify generated')
    const rec2 = expectOk(assert, await admin.auth.admin.generateLink({ type: 'recovery', email: other }), 'recovery link')
    expectOk(assert, await anon.auth.verifyOtp({ token_hash: rec2.properties.hashed_token, type: 'recovery' }), 'verify recovery hash')
  })
})
