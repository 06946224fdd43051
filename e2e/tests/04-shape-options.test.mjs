// The client's own `where`, `columns` and subset snapshots: honoured within the policy,
// refused with 403 outside it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FetchError } from '@electric-sql/client'
import { ACME_ROWS, Shape, byId, firstError, itemsStream } from './helpers.mjs'

async function syncedRows(options) {
  const { stream, errors, close } = itemsStream(options)
  try {
    const rows = byId(await new Shape(stream).rows)
    assert.deepEqual(errors, [])
    return rows
  } finally {
    close()
  }
}

test('where within the policy narrows the tenant rows', async () => {
  const rows = await syncedRows({ params: { where: 'done = false' } })
  assert.deepEqual(rows, ACME_ROWS.filter((row) => !row.done))
})

test('where with params within the policy', async () => {
  const rows = await syncedRows({ params: { where: 'id >= $1', params: ['2'] } })
  assert.deepEqual(rows, ACME_ROWS.filter((row) => row.id >= 2n))
})

test('where cannot widen the row filter to another tenant', async () => {
  const rows = await syncedRows({ params: { where: "tenant_id = 'globex' OR true" } })
  assert.deepEqual(rows, ACME_ROWS)
})

test('columns within the policy', async () => {
  const rows = await syncedRows({ params: { columns: ['id', 'title'] } })
  assert.deepEqual(rows, ACME_ROWS.map(({ id, title }) => ({ id, title })))
})

for (const [name, params] of [
  ['columns naming internal_note', { columns: ['id', 'internal_note'] }],
  ['where mentioning internal_note', { where: "internal_note = 'ask legal first'" }],
  ['where with a subquery', { where: 'id IN (SELECT id FROM tenants)' }],
  ['another table', { table: 'secrets' }],
]) {
  test(`refused with 403: ${name}`, async () => {
    const error = await firstError({ params })
    assert.ok(error instanceof FetchError, `${error}`)
    assert.equal(error.status, 403)
  })
}

for (const method of ['GET', 'POST']) {
  test(`fetchSnapshot (${method}) within the policy returns the tenant's matching rows`, async () => {
    const { stream, errors, close } = itemsStream({ subsetMethod: method })
    try {
      await new Shape(stream).rows
      const { data } = await stream.fetchSnapshot({ where: 'id >= $1', params: { 1: '2' }, orderBy: 'id DESC', limit: 10 })
      // Electric ANDs the subset with the shape's where: globex's rows 4 and 5 stay out.
      assert.deepEqual(data.map((message) => message.value), [ACME_ROWS[2], ACME_ROWS[1]])
      assert.deepEqual(errors, [])
    } finally {
      close()
    }
  })

  test(`fetchSnapshot (${method}) outside the policy is a 403`, async () => {
    const { stream, close } = itemsStream({ subsetMethod: method })
    try {
      await new Shape(stream).rows
      await assert.rejects(
        stream.fetchSnapshot({ where: "internal_note <> ''", orderBy: 'id', limit: 10 }),
        (error) => error instanceof FetchError && error.status === 403,
      )
    } finally {
      close()
    }
  })

  test(`requestSnapshot (${method}) injects the tenant's matching rows into a changes_only stream`, async () => {
    const { stream, errors, close } = itemsStream({ log: 'changes_only', subsetMethod: method })
    const shape = new Shape(stream)
    try {
      await shape.rows
      assert.deepEqual(shape.currentRows, []) // changes_only: no initial snapshot
      await stream.requestSnapshot({ where: 'done = $1', params: { 1: 'false' }, orderBy: 'id', limit: 10 })
      const rows = await new Promise((resolve) => {
        const check = () => shape.currentRows.length > 0 && resolve(shape.currentRows)
        shape.subscribe(check)
        check()
      })
      assert.deepEqual(byId(rows), ACME_ROWS.filter((row) => !row.done))
      assert.deepEqual(errors, [])
    } finally {
      close()
    }
  })
}
