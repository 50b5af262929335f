import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { lockDataDir, LOCK_FILE } from '../../src/app/lock.js'
import { canMount, fill } from '../helpers/syslog.js'

// L1: on a full disk the lock write failed with a raw ENOSPC line and left an empty
// keatrail.lock behind; a restart within 5 s then said the directory was in use by another run.
describe.skipIf(!canMount && process.env.CI !== 'true')(`data-dir lock on a full disk${canMount ? '' : ' (skipped: needs root to mount a tmpfs)'}`, () => {
  it('fails with KEATRAIL_ERR_DATA_DIR and leaves no lock file; takes the lock once there is room', () => {
    const mount = mkdtempSync(join(tmpdir(), 'kt-lock-full-'))
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mount])
    try {
      const dir = join(mount, 'data')
      mkdirSync(dir)
      const ballast = fill(mount)
      let err: unknown
      try { lockDataDir(dir) } catch (e) { err = e }
      expect((err as { code?: string }).code).toBe('KEATRAIL_ERR_DATA_DIR')
      expect((err as Error).message).toMatch(new RegExp(`^Cannot use the data directory ${dir}: cannot write the lock file .*ENOSPC`))
      expect(readdirSync(dir)).toEqual([])
      // Not "in use by another keatrail run": the next start (room again) takes it.
      rmSync(ballast)
      const unlock = lockDataDir(dir)
      expect(existsSync(join(dir, LOCK_FILE))).toBe(true)
      unlock()
      expect(readdirSync(dir)).toEqual([])
    } finally {
      execFileSync('umount', [mount])
    }
  })
})
