'use strict'
// Scenario 8 of issue #4: @supabase/supabase-js (unmodified) against weauth, for the standard GoTrue
// flows and the admin API with a service-role key.

const { describe, it, before, after } = require('node:test')
const { createClient } = require('@supabase/supabase-js')
const { startStack } = require('../lib/harness')
const { Recorder } = require('../lib/recorder')
const { expectAppError, expectOk } = require('../lib/app')

const rec = new Recorder('supabase-js')
const assert = rec.assert
// Every failure, not only assertions, is reported with the last HTTP exchanges.
const scenario = (name, fn) => it(name, rec.guard(fn))
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

describe('8. @supabase/supabase-js', () => {
  let stack
  const client = (key) =>
    createClient(stack.url, key, {
      auth: { persistSession: false, autoRefreshToken: false },
      global: { fetch: rec.fetch() },
    })

  before(async () => {
    stack = await startStack({ name: 'supabase-js' })
  })
  after(async () => {
    if (rec.failed && stack) console.error(stack.logs())
    await stack?.stop({ keepLogs: rec.failed })
  })

  scenario('signUp → signInWithPassword → getUser → updateUser → refreshSession → signOut', async () => {
    const supabase = client(stack.anonKey)
    const email = `Alice.${Date.now()}@Example.com`
    const password = 'correct horse battery'

    const signUp = await rec.call('signUp', () => supabase.auth.signUp({ email, password, options: { data: { plan: 'free' } } }))
    const up = expectOk(assert, signUp, 'signUp')
    assert.ok(up.session, 'autoconfirm: signUp returns a session')
    assert.match(up.user.id, UUID)
    assert.equal(up.user.email, email.toLowerCase(), 'e-mail stored lower-cased')
    assert.ok(up.user.email_confirmed_at, 'email_confirmed_at (autoconfirm)')
    assert.equal(up.user.user_metadata.plan, 'free')
    assert.equal(up.user.aud, 'authenticated')
    assert.equal(up.user.role, 'authenticated')

    const signIn = await rec.call('signInWithPassword', () => supabase.auth.signInWithPassword({ email, password }))
    const { session, user } = expectOk(assert, signIn, 'signInWithPassword')
    assert.equal(user.id, up.user.id)
    assert.equal(session.token_type, 'bearer')
    assert.ok(session.expires_at > Date.now() / 1000)
    assert.ok(session.refresh_token)

    const me = await rec.call('getUser', () => supabase.auth.getUser())
    assert.equal(expectOk(assert, me, 'getUser').user.id, user.id)

    const upd = await rec.call('updateUser({ data })', () => supabase.auth.updateUser({ data: { nickname: 'Alice', plan: 'pro' } }))
    const updated = expectOk(assert, upd, 'updateUser').user
    assert.equal(updated.user_metadata.nickname, 'Alice')
    assert.equal(updated.user_metadata.plan, 'pro')
    const reread = await rec.call('getUser (after update)', () => supabase.auth.getUser())
    assert.equal(expectOk(assert, reread, 'getUser').user.user_metadata.nickname, 'Alice')

    const refresh = await rec.call('refreshSession', () => supabase.auth.refreshSession())
    const fresh = expectOk(assert, refresh, 'refreshSession')
    assert.notEqual(fresh.session.access_token, session.access_token, 'new access token')
    assert.notEqual(fresh.session.refresh_token, session.refresh_token, 'rotated refresh token')
    assert.equal(fresh.user.id, user.id)
    assert.equal(fresh.user.user_metadata.nickname, 'Alice', 'the new token carries the metadata')

    const out = await rec.call('signOut', () => supabase.auth.signOut())
    assert.equal(out.error, null, `signOut: ${out.error && out.error.message}`)
    const after = await rec.call('getUser (signed out)', () => supabase.auth.getUser())
    expectAppError(assert, rec, after, { status: 400, name: 'AuthSessionMissingError' })

    // The signed-out refresh token is refused (supabase-js error shape: status + code + message).
    const replay = await rec.call('refreshSession (signed-out token)', () => supabase.auth.refreshSession({ refresh_token: fresh.session.refresh_token }))
    const err = expectAppError(assert, rec, replay, { status: 400, code: 'refresh_token_not_found' })
    assert.equal(err.code, 'refresh_token_not_found', 'error.code')
  })

  scenario('error paths: wrong password, duplicate sign-up, weak password', async () => {
    const supabase = client(stack.anonKey)
    const email = `bob.${Date.now()}@example.com`
    expectOk(assert, await rec.call('signUp', () => supabase.auth.signUp({ email, password: 'correct horse battery' })), 'signUp')

    const wrong = await rec.call('signInWithPassword (wrong password)', () => supabase.auth.signInWithPassword({ email, password: 'wrong password!' }))
    assert.equal(expectAppError(assert, rec, wrong, { status: 400, code: 'invalid_credentials' }).code, 'invalid_credentials')

    const dup = await rec.call('signUp (existing e-mail)', () => supabase.auth.signUp({ email, password: 'correct horse battery' }))
    assert.equal(expectAppError(assert, rec, dup, { status: 422, code: 'user_already_exists' }).code, 'user_already_exists')

    const weak = await rec.call('signUp (weak password)', () => supabase.auth.signUp({ email: `weak.${email}`, password: '123' }))
    const weakErr = expectAppError(assert, rec, weak, { status: 422, code: 'weak_password' })
    assert.equal(weakErr.name, 'AuthWeakPasswordError', 'supabase-js recognises weak_password')
    assert.ok(Array.isArray(weakErr.reasons) && weakErr.reasons.length > 0, `reasons: ${JSON.stringify(weakErr.reasons)}`)
  })

  scenario('admin API with a service-role key: createUser, listUsers, getUserById, deleteUser', async () => {
    const admin = client(stack.serviceRoleKey).auth.admin
    const email = `carol.${Date.now()}@example.com`

    const created = await rec.call('admin.createUser', () =>
      admin.createUser({ email, password: 'correct horse battery', email_confirm: true, user_metadata: { nickname: 'Carol' }, app_metadata: { tier: 'gold' } }),
    )
    const user = expectOk(assert, created, 'admin.createUser').user
    assert.match(user.id, UUID)
    assert.equal(user.email, email)
    assert.ok(user.email_confirmed_at, 'email_confirm: true')
    assert.equal(user.user_metadata.nickname, 'Carol')
    assert.equal(user.app_metadata.tier, 'gold')

    const list = await rec.call('admin.listUsers', () => admin.listUsers({ page: 1, perPage: 50 }))
    const listed = expectOk(assert, list, 'admin.listUsers')
    assert.ok(Array.isArray(listed.users), 'data.users is an array')
    assert.ok(listed.users.some((u) => u.id === user.id), 'the new user is listed')
    assert.equal(typeof listed.total, 'number', `data.total (from X-Total-Count), got ${JSON.stringify(listed.total)}`)
    assert.ok(listed.total >= 1)

    const got = await rec.call('admin.getUserById', () => admin.getUserById(user.id))
    assert.equal(expectOk(assert, got, 'admin.getUserById').user.email, email)

    // The created user can sign in.
    const anon = client(stack.anonKey)
    expectOk(assert, await rec.call('signInWithPassword (admin-created user)', () => anon.auth.signInWithPassword({ email, password: 'correct horse battery' })), 'signInWithPassword')

    const del = await rec.call('admin.deleteUser', () => admin.deleteUser(user.id))
    expectOk(assert, del, 'admin.deleteUser')
    const after = await rec.call('admin.listUsers (after delete)', () => admin.listUsers({ page: 1, perPage: 50 }))
    assert.ok(!expectOk(assert, after, 'admin.listUsers').users.some((u) => u.id === user.id), 'deleted user no longer listed')
    const gone = await rec.call('admin.getUserById (deleted)', () => admin.getUserById(user.id))
    expectAppError(assert, rec, gone, { status: 404, code: 'user_not_found' })

    // The anon key is not an admin key.
    const denied = await rec.call('admin.listUsers with the anon key', () => client(stack.anonKey).auth.admin.listUsers())
    expectAppError(assert, rec, denied, { status: 403, code: 'not_admin' })
  })
})
