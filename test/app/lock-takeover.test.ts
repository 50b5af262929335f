import { spawnSync } from 'node:child_process'
import * as realFs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'

// L3: two processes finding the same stale lock. B read the stale pid, A removed the lock and
// created its own, then B's removal deleted A's new lock and both ran. Here "A" acts inside B's
// removal of the lock (the first rm or rename of it): B must leave A's lock alone and fail.
const race = vi.hoisted(() => ({ path: '', act: undefined as (() => void) | undefined }))
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>()
  const first = (p: unknown): void => {
    if (p === race.path && race.act !== undefined) { const act = race.act; race.act = undefined; act() }
  }
  const rmSync: typeof fs.rmSync = (p, o) => { first(p); fs.rmSync(p, o) }
  const renameSync: typeof fs.renameSync = (a, b) => { first(a); fs.renameSync(a, b) }
  const unlinkSync: typeof fs.unlinkSync = (p) => { first(p); fs.unlinkSync(p) }
  return { ...fs, default: { ...fs, rmSync, renameSync, unlinkSync }, rmSync, renameSync, unlinkSync }
})

const { lockDataDir, LOCK_FILE } = await import('../../src/app/lock.js')

describe('data-dir lock takeover', () => {
  it('of a stale lock never removes a lock another process took over meanwhile', () => {
    const dir = realFs.mkdtempSync(join(tmpdir(), 'kt-lock-race-'))
    const path = join(dir, LOCK_FILE)
    const gone = spawnSync(process.execPath, ['-e', '']).pid as number
    realFs.writeFileSync(path, `${gone}\n`)
    // A: a live process (pid 1, started long before) took the stale lock over first.
    race.path = path
    race.act = () => {
      realFs.rmSync(path)
      realFs.writeFileSync(path, '1\n')
      realFs.utimesSync(path, new Date(), new Date())
    }
    let err: unknown
    try { lockDataDir(dir) } catch (e) { err = e }
    expect(race.act).toBeUndefined() // the takeover did happen in the window
    expect((err as { code?: string } | undefined)?.code).toBe('KEATRAIL_ERR_DATADIR_LOCKED')
    expect((err as Error).message).toContain('pid 1,')
    expect(realFs.readFileSync(path, 'utf8')).toBe('1\n')
    expect(realFs.readdirSync(dir)).toEqual([LOCK_FILE])
  })

  it('takes over a stale lock when nobody else does', () => {
    const dir = realFs.mkdtempSync(join(tmpdir(), 'kt-lock-stale-'))
    const path = join(dir, LOCK_FILE)
    const gone = spawnSync(process.execPath, ['-e', '']).pid as number
    realFs.writeFileSync(path, `${gone}\n`)
    race.act = undefined
    const unlock = lockDataDir(dir)
    expect(realFs.readFileSync(path, 'utf8')).toBe(`${process.pid}\n`)
    expect(() => lockDataDir(dir)).toThrow(/KEATRAIL_ERR_DATADIR_LOCKED|in use by another keatrail run/)
    unlock()
    expect(realFs.readdirSync(dir)).toEqual([])
  })
})
