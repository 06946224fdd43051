// Electric's gatekeeper pattern with the real client: a token from the gatekeeper endpoint
// (examples/gatekeeper.rs) names one shape; the client syncs it through the proxy, is refused
// any other shape, and is cut off (its live request answered 401) when the app revokes it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FetchError } from '@electric-sql/client'
import { ACME_ROWS, Shape, ShapeStream, byId, rowsWhen } from './helpers.mjs'

const GATEKEEPER_URL = process.env.GATEKEEPER_URL
const ADMIN = { Authorization: `Bearer ${process.env.GATEKEEPER_ADMIN_TOKEN}` }
const ALICE = { Authorization: 'Bearer alice-token' }

/** The gatekeeper's answer: ShapeStream options (url, headers with the token, params). */
async function gatekeeperConfig(table, headers = ALICE) {
  const response = await fetch(`${GATEKEEPER_URL}/gatekeeper/${table}`, { method: 'POST', headers })
  assert.equal(response.status, 200)
  assert.equal(response.headers.get('cache-control'), 'no-store')
  return response.json()
}

/** A stream from gatekeeper options; errors go to `onError` if given, else to `errors`. */
function streamFrom(config, onError) {
  const aborter = new AbortController()
  const errors = []
  const stream = new ShapeStream({
    ...config,
    signal: aborter.signal,
    warnOnHttp: false,
    onError: onError ?? ((error) => { errors.push(error) }),
  })
  return { stream, errors, close: () => aborter.abort() }
}

function firstErrorOf(config) {
  return new Promise((resolve) => {
    const { stream, close } = streamFrom(config, (error) => {
      close()
      resolve(error)
    })
    stream.subscribe(() => {})
  })
}

test('the client syncs the shape its gatekeeper token names', async () => {
  const config = await gatekeeperConfig('items')
  assert.ok(config.headers.authorization.startsWith('Bearer '))
  assert.equal(config.params.table, 'items')
  const { stream, errors, close } = streamFrom(config)
  try {
    const rows = await rowsWhen(new Shape(stream), (rows) => rows.length === ACME_ROWS.length)
    assert.deepEqual(byId(rows), ACME_ROWS)
    assert.deepEqual(errors, [])
  } finally {
    close()
  }
})

test('the same token for another shape is refused with 403', async () => {
  const config = await gatekeeperConfig('items')
  for (const params of [
    { ...config.params, where: 'true' },
    { ...config.params, params: { 1: 'globex' } },
    { ...config.params, columns: [...config.params.columns, 'internal_note'] },
    { ...config.params, table: 'tenants' },
  ]) {
    const error = await firstErrorOf({ ...config, params })
    assert.ok(error instanceof FetchError, `${error}`)
    assert.equal(error.status, 403, JSON.stringify(params))
  }
})

test('a token that is not the gatekeeper\'s is refused with 401', async () => {
  const config = await gatekeeperConfig('items')
  const forged = config.headers.authorization.slice(0, -4) + 'AAAA'
  const error = await firstErrorOf({ ...config, headers: { authorization: forged } })
  assert.ok(error instanceof FetchError, `${error}`)
  assert.equal(error.status, 401)
})

test('a revoked user is cut off: the live client sees 401 in onError', async () => {
  const config = await gatekeeperConfig('items')
  let resolveError
  const cutOff = new Promise((resolve) => { resolveError = resolve })
  const { stream, close } = streamFrom(config, (error) => {
    resolveError(error)
  })
  try {
    await rowsWhen(new Shape(stream), (rows) => rows.length === ACME_ROWS.length)
    const revoked = await fetch(`${GATEKEEPER_URL}/admin/revoke/alice`, { method: 'POST', headers: ADMIN })
    assert.equal(revoked.status, 204)
    const error = await cutOff
    assert.ok(error instanceof FetchError, `${error}`)
    assert.equal(error.status, 401)
  } finally {
    close()
    await fetch(`${GATEKEEPER_URL}/admin/restore/alice`, { method: 'POST', headers: ADMIN })
  }
  // Let in again, the user syncs with a fresh token.
  const { stream: again, close: closeAgain } = streamFrom(await gatekeeperConfig('items'))
  try {
    const rows = await rowsWhen(new Shape(again), (rows) => rows.length === ACME_ROWS.length)
    assert.deepEqual(byId(rows), ACME_ROWS)
  } finally {
    closeAgain()
  }
})
