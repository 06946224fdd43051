// Authentication as the client sees it, and CORS as a browser sees it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { FetchError } from '@electric-sql/client'
import { SHAPE_URL, firstError } from './helpers.mjs'

const ORIGIN = 'https://app.example'
const EXPOSED = ['electric-handle', 'electric-offset', 'electric-schema', 'electric-cursor', 'electric-up-to-date']

/** A raw request, so that repeated response headers stay visible (fetch joins them). */
function rawRequest(method, url, headers) {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, headers }, (response) => {
      const body = []
      response.on('data', (chunk) => body.push(chunk))
      response.on('end', () => {
        const values = (name) => {
          const found = []
          for (let i = 0; i < response.rawHeaders.length; i += 2) {
            if (response.rawHeaders[i].toLowerCase() === name) found.push(response.rawHeaders[i + 1])
          }
          return found
        }
        resolve({ status: response.statusCode, values, body: Buffer.concat(body).toString() })
      })
    })
    request.on('error', reject)
    request.end()
  })
}

const list = (values) => values.flatMap((value) => value.split(',')).map((name) => name.trim().toLowerCase())

test('no token: the client sees a 401', async () => {
  const error = await firstError({ headers: {} })
  assert.ok(error instanceof FetchError, `${error}`)
  assert.equal(error.status, 401)
})

test('an unknown token: the client sees a 401', async () => {
  const error = await firstError({ headers: { Authorization: 'Bearer mallory-token' } })
  assert.ok(error instanceof FetchError, `${error}`)
  assert.equal(error.status, 401)
})

test('a browser preflight with Authorization succeeds', async () => {
  const response = await rawRequest('OPTIONS', `${SHAPE_URL}?table=items&offset=-1`, {
    Origin: ORIGIN,
    'Access-Control-Request-Method': 'GET',
    'Access-Control-Request-Headers': 'authorization',
  })
  assert.ok(response.status >= 200 && response.status < 300, `status ${response.status}`)
  assert.deepEqual(response.values('access-control-allow-origin'), [ORIGIN])
  assert.ok(list(response.values('access-control-allow-headers')).includes('authorization'))
  assert.ok(list(response.values('access-control-allow-methods')).includes('get'))
})

test('the actual response exposes Electric headers, with one allow-origin value', async () => {
  const response = await rawRequest('GET', `${SHAPE_URL}?table=items&offset=-1`, {
    Origin: ORIGIN,
    Authorization: 'Bearer alice-token',
  })
  assert.equal(response.status, 200)
  // The stand-in, like Electric, sets its own CORS headers: the gateway's must replace them,
  // not be added beside them (a browser refuses a response with two allow-origin values).
  assert.deepEqual(response.values('access-control-allow-origin'), [ORIGIN])
  assert.equal(response.values('access-control-expose-headers').length, 1)
  const exposed = list(response.values('access-control-expose-headers'))
  for (const name of EXPOSED) assert.ok(exposed.includes(name), `${name} not exposed: ${exposed}`)
  for (const name of ['electric-handle', 'electric-offset', 'electric-schema']) {
    assert.equal(response.values(name).length, 1, name)
  }
})

test("the gateway's CORS policy is the only one: upstream CORS headers do not leak through", async () => {
  // The stand-in, like Electric, answers `*` to a request without Origin and lists its own
  // methods (DELETE included); the gateway mirrors origins and refuses DELETE.
  const response = await rawRequest('GET', `${SHAPE_URL}?table=items&offset=-1`, {
    Authorization: 'Bearer alice-token',
  })
  assert.equal(response.status, 200)
  assert.deepEqual(response.values('access-control-allow-origin'), [])
  assert.deepEqual(response.values('access-control-allow-methods'), [])
})

test('a refusal also carries CORS headers, so a browser client can read its status', async () => {
  const response = await rawRequest('GET', `${SHAPE_URL}?table=items&offset=-1&columns=internal_note`, {
    Origin: ORIGIN,
    Authorization: 'Bearer alice-token',
  })
  assert.equal(response.status, 403)
  assert.deepEqual(response.values('access-control-allow-origin'), [ORIGIN])
})
