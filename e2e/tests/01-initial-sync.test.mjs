// Initial sync through all four layers: the tenant's rows only, the allowed columns only,
// values parsed by the client from `electric-schema`, titles decrypted by the gateway.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ACME_ROWS, BOB, GLOBEX_ROWS, Shape, byId, itemsStream } from './helpers.mjs'

test('alice (acme) syncs exactly acme rows, allowed columns, typed and decrypted', async () => {
  const { stream, errors, close } = itemsStream()
  try {
    const rows = byId(await new Shape(stream).rows)
    assert.deepEqual(errors, [])
    // deepEqual is exact: no internal_note key, id a bigint (int8), done a boolean (bool),
    // title the plaintext (it is ciphertext in the stand-in).
    assert.deepEqual(rows, ACME_ROWS)
    assert.equal(typeof rows[0].id, 'bigint')
    assert.equal(typeof rows[0].done, 'boolean')
  } finally {
    close()
  }
})

test('bob (globex) syncs exactly globex rows', async () => {
  const { stream, errors, close } = itemsStream({ headers: BOB })
  try {
    assert.deepEqual(byId(await new Shape(stream).rows), GLOBEX_ROWS)
    assert.deepEqual(errors, [])
  } finally {
    close()
  }
})
