// The encryption round trip through the real client: written through the gateway's
// POST /api/items (title encrypted with the tenant's key), read back decrypted by alice's
// ShapeStream, stored as ciphertext in the stand-in.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  ALICE, BOB, GATEWAY_URL, STANDIN_SECRET, STANDIN_URL, Shape, byId, control, itemsStream, rowsWhen,
} from './helpers.mjs'

const TITLE = 'Written through the gateway'

/** The row as the stand-in (the database) holds it, read directly with Electric's secret. */
async function atRest(id) {
  const query = new URLSearchParams({ table: 'items', offset: '-1', where: `id = ${id}`, secret: STANDIN_SECRET })
  const response = await fetch(`${STANDIN_URL}/v1/shape?${query}`)
  assert.equal(response.status, 200)
  const messages = await response.json()
  return messages.find((message) => message.value)?.value
}

test('a write through the gateway is stored encrypted and synced decrypted', async () => {
  const { stream, errors, close } = itemsStream()
  const shape = new Shape(stream)
  try {
    await shape.rows
    const response = await fetch(`${GATEWAY_URL}/api/items`, {
      method: 'POST',
      headers: { ...ALICE, 'content-type': 'application/json' },
      // tenant_id in the body is ignored: the row is the caller's tenant's.
      body: JSON.stringify({ id: 401, title: TITLE, done: false, tenant_id: 'globex' }),
    })
    assert.equal(response.status, 201)

    const rows = await rowsWhen(shape, (rows) => rows.some((row) => row.id === 401n))
    assert.deepEqual(rows.find((row) => row.id === 401n), { id: 401n, tenant_id: 'acme', title: TITLE, done: false })
    assert.deepEqual(errors, [])

    const stored = await atRest(401)
    assert.equal(stored.tenant_id, 'acme')
    assert.notEqual(stored.title, TITLE)
    assert.ok(!stored.title.includes('gateway'))
    // base64(12-byte nonce || ciphertext || 16-byte tag)
    assert.equal(Buffer.from(stored.title, 'base64').length, 12 + Buffer.byteLength(TITLE) + 16)

    // Globex's key does not open acme's row, and globex's policy does not show it anyway.
    const bob = itemsStream({ headers: BOB })
    try {
      const bobRows = byId(await new Shape(bob.stream).rows)
      assert.equal(bobRows.some((row) => row.id === 401n), false)
    } finally {
      bob.close()
    }
  } finally {
    close()
    await control('delete', 'items', { id: 401 })
  }
})

test('the demo rows are ciphertext at rest too', async () => {
  const stored = await atRest(1)
  assert.notEqual(stored.title, 'Draft the launch plan')
  assert.equal(stored.internal_note, 'ask legal first')
})
