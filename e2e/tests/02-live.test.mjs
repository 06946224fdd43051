// Live changes through the gateway: long-poll and SSE. A row inserted upstream for acme
// reaches alice's stream; one for globex never does.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Shape, control, eventually, itemsStream, standInStats } from './helpers.mjs'

/** Inserts a globex row, then an acme row; resolves with what alice's stream saw. */
async function liveChanges(options, ids) {
  const { stream, errors, close } = itemsStream(options)
  const seen = []
  stream.subscribe((messages) => {
    for (const message of messages) if (message.value) seen.push(message.value)
  })
  const shape = new Shape(stream)
  try {
    await shape.rows // up to date: the next requests are live
    await control('insert', 'items', { id: ids.globex, tenant_id: 'globex', title: 'Not for acme', done: false })
    await control('insert', 'items', { id: ids.acme, tenant_id: 'acme', title: 'Fresh for acme', done: false })
    await new Promise((resolve) => {
      const check = () => seen.some((row) => row.id === BigInt(ids.acme)) && resolve()
      stream.subscribe(check)
      check()
    })
    return { seen, errors, rows: shape.currentRows }
  } finally {
    close()
    await control('delete', 'items', { id: ids.globex })
    await control('delete', 'items', { id: ids.acme })
  }
}

test('long-poll: an acme row inserted upstream reaches alice, a globex row does not', async () => {
  const { seen, errors, rows } = await liveChanges({}, { globex: 201, acme: 202 })
  assert.deepEqual(errors, [])
  const fresh = seen.find((row) => row.id === 202n)
  assert.deepEqual(fresh, { id: 202n, tenant_id: 'acme', title: 'Fresh for acme', done: false })
  // Changes arrive in log order, so the globex row (inserted first) would be here by now.
  assert.equal(seen.some((row) => row.id === 201n || row.tenant_id === 'globex'), false)
  assert.equal(rows.some((row) => row.id === 201n), false)
})

test('SSE: live changes stream through the gateway as they happen, tenant-filtered', async () => {
  const before = await standInStats()
  const { stream, errors, close } = itemsStream({ liveSse: true })
  const seen = []
  let statsOnArrival
  stream.subscribe(async (messages) => {
    for (const message of messages) if (message.value) seen.push(message.value)
    if (!statsOnArrival && seen.some((row) => row.id === 212n)) {
      statsOnArrival = await standInStats()
    }
  })
  const shape = new Shape(stream)
  try {
    await shape.rows
    // Wait for the SSE request to be open at the stand-in, then change rows upstream.
    let atInsert
    await eventually(async () => {
      atInsert = await standInStats()
      return atInsert.sse_requests > before.sse_requests && atInsert.live_in_flight > 0
    })
    await control('insert', 'items', { id: 211, tenant_id: 'globex', title: 'Not for acme', done: true })
    await control('insert', 'items', { id: 212, tenant_id: 'acme', title: 'Streamed to acme', done: true })
    await eventually(async () => statsOnArrival !== undefined)

    assert.deepEqual(errors, [])
    assert.deepEqual(seen.find((row) => row.id === 212n), {
      id: 212n, tenant_id: 'acme', title: 'Streamed to acme', done: true,
    })
    assert.equal(seen.some((row) => row.id === 211n || row.tenant_id === 'globex'), false)
    // Unbuffered: the row arrived while the SSE response that was open when it was inserted
    // was still open at the stand-in, and no other SSE request had been made. Through a
    // buffering proxy the row would arrive only once that stream had ended: then either no
    // live request is in flight, or the client has already opened the next SSE request.
    assert.equal(statsOnArrival.sse_requests, atInsert.sse_requests)
    assert.ok(statsOnArrival.live_in_flight > 0)
  } finally {
    close()
    await control('delete', 'items', { id: 211 })
    await control('delete', 'items', { id: 212 })
  }
})
