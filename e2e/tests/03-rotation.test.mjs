// A shape rotation upstream (409 must-refetch) passes through the gateway untouched; the
// client refetches from scratch with the new handle and ends with the right rows.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ACME_ROWS, Shape, byId, control, itemsStream, rowsWhen } from './helpers.mjs'

test('a 409 rotation is survived: refetch, new handle, right rows', async () => {
  const { stream, errors, close } = itemsStream()
  const controls = []
  stream.subscribe((messages) => {
    for (const message of messages) if (message.headers.control) controls.push(message.headers.control)
  })
  const shape = new Shape(stream)
  try {
    assert.deepEqual(byId(await shape.rows), ACME_ROWS)
    const handle = stream.shapeHandle
    assert.ok(handle)

    await control('rotate', 'items')
    await control('insert', 'items', { id: 301, tenant_id: 'acme', title: 'After the rotation', done: true })
    const rows = await rowsWhen(shape, (rows) => rows.some((row) => row.id === 301n))

    assert.deepEqual(errors, [])
    assert.ok(controls.includes('must-refetch'), `controls seen: ${controls}`)
    assert.notEqual(stream.shapeHandle, handle)
    assert.deepEqual(byId(rows), [
      ...ACME_ROWS,
      { id: 301n, tenant_id: 'acme', title: 'After the rotation', done: true },
    ])
  } finally {
    close()
    await control('delete', 'items', { id: 301 })
  }
})
