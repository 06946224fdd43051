// Shared by the end-to-end tests: where the servers are, and small waits on the real client.
// The harness (tests/e2e_client.rs) starts the gateway, the stand-in and a control server
// and passes their URLs in the environment.
import { Shape, ShapeStream } from '@electric-sql/client'

function required(name) {
  const value = process.env[name]
  if (!value) {
    throw new Error(`${name} is not set: run these tests through \`cargo test --test e2e_client\``)
  }
  return value
}

export const GATEWAY_URL = required('GATEWAY_URL')
export const CONTROL_URL = required('CONTROL_URL')
export const STANDIN_URL = required('STANDIN_URL')
export const STANDIN_SECRET = required('STANDIN_SECRET')
export const SHAPE_URL = `${GATEWAY_URL}/v1/shape`

export const ALICE = { Authorization: 'Bearer alice-token' } // tenant acme
export const BOB = { Authorization: 'Bearer bob-token' } // tenant globex

/** The demo data's rows as each tenant may see them (internal_note is never visible). */
export const ACME_ROWS = [
  { id: 1n, tenant_id: 'acme', title: 'Draft the launch plan', done: false },
  { id: 2n, tenant_id: 'acme', title: 'Order new laptops', done: true },
  { id: 3n, tenant_id: 'acme', title: 'Book the offsite', done: false },
]
export const GLOBEX_ROWS = [
  { id: 4n, tenant_id: 'globex', title: 'Audit the vendors', done: false },
  { id: 5n, tenant_id: 'globex', title: 'Renew the lease', done: true },
]

/**
 * A ShapeStream of `items` through the gateway, stopped by `close()`. Errors reach
 * `errors` (and stop the stream) unless `onError` is given.
 */
export function itemsStream({ headers = ALICE, params = {}, ...options } = {}) {
  const aborter = new AbortController()
  const errors = []
  const stream = new ShapeStream({
    url: SHAPE_URL,
    params: { table: 'items', ...params },
    headers,
    signal: aborter.signal,
    warnOnHttp: false,
    onError: (error) => {
      errors.push(error)
    },
    ...options,
  })
  return { stream, errors, close: () => aborter.abort() }
}

/** Rows sorted by id, for comparisons. */
export function byId(rows) {
  return [...rows].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

/** Resolves with the shape's rows once `done(rows)` holds (checked on every change). */
export function rowsWhen(shape, done) {
  return new Promise((resolve) => {
    const check = () => {
      const rows = shape.currentRows
      if (shape.isUpToDate && done(rows)) {
        unsubscribe()
        resolve(rows)
      }
    }
    const unsubscribe = shape.subscribe(check)
    check()
  })
}

/** Resolves with the first error the stream's `onError` sees. */
export function firstError(options) {
  return new Promise((resolve) => {
    const { stream, close } = itemsStream({
      ...options,
      onError: (error) => {
        close()
        resolve(error)
      },
    })
    stream.subscribe(() => {})
  })
}

/** A change upstream, through the control server: insert, update, delete or rotate. */
export async function control(change, table, row = {}) {
  const response = await fetch(`${CONTROL_URL}/${change}/${table}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(row),
  })
  const body = await response.json()
  if (!response.ok) throw new Error(`control ${change} ${table}: ${body.error}`)
  return body
}

/** What the stand-in has seen: requests, SSE requests, live requests in flight. */
export async function standInStats() {
  const response = await fetch(`${CONTROL_URL}/stats`)
  return response.json()
}

/** Resolves once `check()` (async) returns true, polling the control server. */
export async function eventually(check) {
  for (;;) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

export { Shape, ShapeStream }
