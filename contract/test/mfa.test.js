'use strict'
// Issue #16: @supabase/supabase-js (unmodified) `auth.mfa.*` against weauth. The user enrols a
// TOTP factor, the test computes the code from the returned secret (RFC 6238, as an
// authenticator app would), verifies, signs in again (aal1 until the second factor), and
// refreshes (aal2 stays); the admin API lists and deletes factors.

const crypto = require('node:crypto')
const { describe, it, before, after } = require('node:test')
const { createClient } = require('@supabase/supabase-js')
const { startStack } = require('../lib/harness')
const { Recorder } = require('../lib/recorder')
const { expectOk } = require('../lib/app')

const rec = new Recorder('mfa')
const assert = rec.assert
const scenario = (name, fn) => it(name, rec.guard(fn))

function base32Decode(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  let bits = ''
  for (const c of s.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0')
  const bytes = []
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2))
  return Buffer.from(bytes)
}

/** The TOTP code of `secret` for the time step `offset` steps from now (SHA-1, 6 digits, 30 s). */
function totp(secret, offset = 0) {
  const step = Math.floor(Date.now() / 1000 / 30) + offset
  const counter = Buffer.alloc(8)
  counter.writeBigUInt64BE(BigInt(step))
  const mac = crypto.createHmac('sha1', base32Decode(secret)).update(counter).digest()
  const o = mac[mac.length - 1] & 0xf
  const n = (mac.readUInt32BE(o) & 0x7fffffff) % 1000000
  return String(n).padStart(6, '0')
}

/** A 6-digit code that is none of the codes accepted now. */
function wrongCode(secret) {
  const valid = [-1, 0, 1].map((o) => totp(secret, o))
  for (let n = 123457; ; n++) if (!valid.includes(String(n))) return String(n)
}

const claims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString())

describe('16. supabase-js auth.mfa', () => {
  let stack
  const client = (key) =>
    createClient(stack.url, key, {
      auth: { persistSession: false, autoRefreshToken: false },
      global: { fetch: rec.fetch() },
    })

  before(async () => {
    stack = await startStack({ name: 'mfa' })
  })
  after(async () => {
    if (rec.failed && stack) console.error(stack.logs())
    await stack?.stop({ keepLogs: rec.failed })
  })

  scenario('enroll → challengeAndVerify → aal2; new sign-in is aal1 → verify → refresh keeps aal2 → unenroll', async () => {
    const supabase = client(stack.anonKey)
    const email = `mfa.${Date.now()}@example.com`
    const password = 'correct horse battery'
    expectOk(assert, await rec.call('signUp', () => supabase.auth.signUp({ email, password })), 'signUp')

    let aal = expectOk(assert, await rec.call('getAAL', () => supabase.auth.mfa.getAuthenticatorAssuranceLevel()), 'getAAL')
    assert.equal(aal.currentLevel, 'aal1')
    assert.equal(aal.nextLevel, 'aal1', 'no factor yet')

    const enrolled = expectOk(
      assert,
      await rec.call('mfa.enroll', () => supabase.auth.mfa.enroll({ factorType: 'totp', friendlyName: 'Authenticator' })),
      'mfa.enroll',
    )
    assert.equal(enrolled.type, 'totp')
    assert.equal(enrolled.friendly_name, 'Authenticator')
    assert.ok(enrolled.totp.qr_code.startsWith('data:image/svg+xml;utf-8,<?xml'), enrolled.totp.qr_code.slice(0, 60))
    assert.ok(enrolled.totp.uri.startsWith(`otpauth://totp/`), enrolled.totp.uri)
    const secret = enrolled.totp.secret
    const factorId = enrolled.id

    let listed = expectOk(assert, await rec.call('mfa.listFactors', () => supabase.auth.mfa.listFactors()), 'listFactors')
    assert.equal(listed.all.length, 1)
    assert.equal(listed.totp.length, 0, 'unverified factors are only in `all`')

    const used = totp(secret)
    const verified = expectOk(
      assert,
      await rec.call('mfa.challengeAndVerify', () => supabase.auth.mfa.challengeAndVerify({ factorId, code: used })),
      'challengeAndVerify',
    )
    assert.equal(claims(verified.access_token).aal, 'aal2')
    assert.deepEqual(
      claims(verified.access_token).amr.map((a) => a.method),
      ['totp', 'password'],
    )
    aal = expectOk(assert, await rec.call('getAAL', () => supabase.auth.mfa.getAuthenticatorAssuranceLevel()), 'getAAL')
    assert.equal(aal.currentLevel, 'aal2')
    assert.equal(aal.nextLevel, 'aal2')
    listed = expectOk(assert, await rec.call('mfa.listFactors', () => supabase.auth.mfa.listFactors()), 'listFactors')
    assert.equal(listed.totp.length, 1)
    assert.equal(listed.totp[0].id, factorId)

    // The same code again, on a new challenge: refused.
    const reused = await rec.call('mfa.challengeAndVerify (reused code)', () => supabase.auth.mfa.challengeAndVerify({ factorId, code: used }))
    assert.ok(reused.error, 'a used code is refused')
    assert.equal(reused.error.code, 'mfa_verification_failed')

    // A second device signs in: aal1, and the SDK knows a second factor is due.
    const other = client(stack.anonKey)
    expectOk(assert, await rec.call('signInWithPassword', () => other.auth.signInWithPassword({ email, password })), 'signIn')
    aal = expectOk(assert, await rec.call('getAAL', () => other.auth.mfa.getAuthenticatorAssuranceLevel()), 'getAAL')
    assert.equal(aal.currentLevel, 'aal1')
    assert.equal(aal.nextLevel, 'aal2')
    const challenge = expectOk(assert, await rec.call('mfa.challenge', () => other.auth.mfa.challenge({ factorId })), 'challenge')
    assert.ok(challenge.expires_at > Date.now() / 1000)
    const wrong = await rec.call('mfa.verify (wrong code)', () =>
      other.auth.mfa.verify({ factorId, challengeId: challenge.id, code: wrongCode(secret) }),
    )
    assert.equal(wrong.error && wrong.error.code, 'mfa_verification_failed')
    expectOk(
      assert,
      await rec.call('mfa.verify', () => other.auth.mfa.verify({ factorId, challengeId: challenge.id, code: totp(secret, 1) })),
      'verify',
    )
    const refreshed = expectOk(assert, await rec.call('refreshSession', () => other.auth.refreshSession()), 'refreshSession')
    assert.equal(claims(refreshed.session.access_token).aal, 'aal2', 'refresh keeps aal2')
    aal = expectOk(assert, await rec.call('getAAL', () => other.auth.mfa.getAuthenticatorAssuranceLevel()), 'getAAL')
    assert.equal(aal.currentLevel, 'aal2')

    // The service role sees the factor, and unenrolling (at aal2) removes it.
    const admin = client(stack.serviceRoleKey)
    const adminList = expectOk(
      assert,
      await rec.call('admin.mfa.listFactors', () => admin.auth.admin.mfa.listFactors({ userId: verified.user.id })),
      'admin.mfa.listFactors',
    )
    assert.equal(adminList.factors.length, 1)
    assert.equal(adminList.factors[0].status, 'verified')
    const gone = expectOk(assert, await rec.call('mfa.unenroll', () => other.auth.mfa.unenroll({ factorId })), 'unenroll')
    assert.equal(gone.id, factorId)
    const after = expectOk(assert, await rec.call('refreshSession', () => other.auth.refreshSession()), 'refreshSession')
    assert.equal(claims(after.session.access_token).aal, 'aal1', 'back to aal1 without the factor')
  })

  scenario('admin.mfa.deleteFactor', async () => {
    const supabase = client(stack.anonKey)
    const email = `mfa.admin.${Date.now()}@example.com`
    const up = expectOk(assert, await rec.call('signUp', () => supabase.auth.signUp({ email, password: 'correct horse battery' })), 'signUp')
    const enrolled = expectOk(assert, await rec.call('mfa.enroll', () => supabase.auth.mfa.enroll({ factorType: 'totp' })), 'mfa.enroll')
    const admin = client(stack.serviceRoleKey)
    const deleted = expectOk(
      assert,
      await rec.call('admin.mfa.deleteFactor', () => admin.auth.admin.mfa.deleteFactor({ userId: up.user.id, id: enrolled.id })),
      'admin.mfa.deleteFactor',
    )
    // auth-js wraps this answer twice ({ data: { data: factor, error: null } }).
    assert.equal(deleted.data.id, enrolled.id)
    const listed = expectOk(assert, await rec.call('mfa.listFactors', () => supabase.auth.mfa.listFactors()), 'listFactors')
    assert.equal(listed.all.length, 0)
  })
})
