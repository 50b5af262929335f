import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { buildApp } from '../../src/api/app.js'
import { asLog, createLogger } from '../../src/app/logger.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'

/** A pino logger writing into an array of parsed JSON lines. */
function captured (level: 'info' | 'debug' | 'warn' = 'info'): { lines: Array<Record<string, unknown>>, logger: ReturnType<typeof createLogger> } {
  const lines: Array<Record<string, unknown>> = []
  const logger = createLogger({ level }, { write: (l: string) => { lines.push(JSON.parse(l) as Record<string, unknown>) } })
  return { lines, logger }
}

describe('keatrail\'s own log (pino)', () => {
  it('writes JSON lines with the level label, msg, code and the error\'s stack', () => {
    const { lines, logger } = captured()
    const log = asLog(logger.child({ source: 'k' }))
    log.info('Following file.', { source: 'k', path: '/x' })
    log.error('KEATRAIL_ERR_SOURCE', 'Source stopped with an error.', { error: new Error('connection reset') })
    log.debug?.('Counters.', {})
    expect(lines).toHaveLength(2)
    expect(lines[0]).toEqual({ time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), level: 'info', source: 'k', path: '/x', msg: 'Following file.' })
    expect(lines[1]).toMatchObject({ level: 'error', code: 'KEATRAIL_ERR_SOURCE', source: 'k', msg: 'Source stopped with an error.', error: 'connection reset', err: { message: 'connection reset', stack: expect.stringContaining('logging.test.ts') } })
  })

  it('an internal API error (HTTP 500) leaves a line with the route and the stack', async () => {
    const store = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-log-')), 'k.db') })
    store.search = async () => { throw new Error('database disk image is malformed') }
    store.searchSerialized = async () => { throw new Error('database disk image is malformed') }
    const { lines, logger } = captured()
    const app = await buildApp({ store, loggerInstance: logger })
    try {
      const res = await app.inject({ url: '/api/v1/events' })
      expect(res.statusCode).toBe(500)
      expect(res.json()).toEqual({ code: 'KEATRAIL_ERR_INTERNAL', message: 'internal error' })
      // Before: the API's logger was off; the cause of a 500 was written nowhere.
      const line = lines.find((l) => l.level === 'error')
      expect(line).toMatchObject({ component: 'api', code: 'KEATRAIL_ERR_INTERNAL', msg: 'GET /api/v1/events failed', err: { message: 'database disk image is malformed', stack: expect.stringContaining('Error: database disk image is malformed') } })
      // Requests themselves are not logged at info.
      expect(lines.filter((l) => l.level === 'info')).toEqual([])
    } finally {
      await app.close()
      await store.close()
    }
  })
})
