import { closeSync, linkSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { DataDirError, DataDirLockedError } from '../errors.js'

/** The file in the data directory that says which process writes there. */
export const LOCK_FILE = 'keatrail.lock'

/** Whether a process with this id exists (EPERM: it does, under another user). */
function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Whether process `pid` started after `ms` (epoch): then it is not the process that wrote a
 * lock at `ms`, only one that got its pid later (pids are reused, at every boot too). Linux:
 * /proc/<pid>/stat's start time (clock ticks since boot, USER_HZ 100) and /proc/stat's btime;
 * elsewhere false (the pid alone decides).
 */
function startedAfter (pid: number, ms: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces), from field 3 on; starttime is 22.
    const startTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19])
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1])
    if (!Number.isFinite(startTicks) || !Number.isFinite(btime)) return false
    // A second of slack: the start time has 10 ms ticks, btime whole seconds.
    return (btime + startTicks / 100) * 1000 > ms + 1000
  } catch {
    return false
  }
}

function mtimeMs (path: string): number {
  try {
    return statSync(path).mtimeMs
  } catch {
    return Number.POSITIVE_INFINITY
  }
}

function ageMs (path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs
  } catch {
    return Number.POSITIVE_INFINITY
  }
}

function pidOf (text: string): number | undefined {
  const pid = Number(text.trim())
  return text.trim() !== '' && Number.isInteger(pid) && pid > 0 ? pid : undefined
}

function holder (path: string): number | undefined {
  try {
    return pidOf(readFileSync(path, 'utf8'))
  } catch {
    return undefined
  }
}

/**
 * Writes our pid to a file of our own next to the lock, complete before anyone can see it as the
 * lock: a failed write (ENOSPC) leaves no lock behind, only an error.
 */
function writeOwn (dataDir: string, path: string): string {
  const own = `${path}.${process.pid}.tmp`
  try {
    const fd = openSync(own, 'w', 0o600)
    try {
      writeSync(fd, `${process.pid}\n`)
    } finally {
      closeSync(fd)
    }
  } catch (err) {
    rmSync(own, { force: true })
    throw new DataDirError(dataDir, `cannot write the lock file ${path}: ${(err as Error).message}`)
  }
  return own
}

/**
 * Creates the lock from our own file: link() fails with EEXIST when there is one already, and
 * the lock is never seen empty. false: there is one.
 */
function create (dataDir: string, path: string, own: string): boolean {
  try {
    linkSync(own, path)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return false
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw new DataDirError(dataDir, (err as Error).message)
  }
  // A file system without hard links: create exclusively, then write; removed if the write fails.
  let fd: number
  try {
    fd = openSync(path, 'wx', 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw new DataDirError(dataDir, (err as Error).message)
  }
  try {
    writeSync(fd, `${process.pid}\n`)
    closeSync(fd)
  } catch (err) {
    try { closeSync(fd) } catch { /* closed or not: removed below */ }
    rmSync(path, { force: true })
    throw new DataDirError(dataDir, `cannot write the lock file ${path}: ${(err as Error).message}`)
  }
  return true
}

/** What identifies one lock file: inode, mtime and content (an inode number is reused at once). */
function identity (path: string): string | undefined {
  try {
    const st = statSync(path)
    return `${st.ino}/${st.mtimeMs}/${readFileSync(path, 'utf8')}`
  } catch {
    return undefined
  }
}

/**
 * Removes the lock judged stale, and only that one: it is first renamed aside (atomic: of two
 * processes taking over the same stale lock only one moves it) and compared with the one judged;
 * a lock created meanwhile by another process (which judged the same stale lock and took over
 * first) is put back, never deleted. false: it was not the one judged.
 */
function removeStale (path: string, judged: string): boolean {
  const aside = `${path}.${process.pid}.stale`
  try {
    renameSync(path, aside)
  } catch {
    return false // gone already: another process took it over
  }
  if (identity(aside) === judged) {
    rmSync(aside, { force: true })
    return true
  }
  // Another process's fresh lock: back where it was (link: never over a third one).
  try { linkSync(aside, path) } catch { /* a third one is there: it holds */ }
  rmSync(aside, { force: true })
  return false
}

/**
 * Takes the data directory for one writer, as Filebeat and Vector lock their data path: two
 * `keatrail run` on one directory would follow the same files with the same checkpoints and
 * overwrite each other's. The lock is a file created exclusively (link(2) of a file already
 * holding the pid); one left by a process that no longer exists (kill -9, power loss), or whose
 * pid now belongs to a process started after the lock was written (a reboot), is taken over. The
 * same process holding it already counts as held: a second service in one process is a second
 * writer too. Returns the release function.
 */
export function lockDataDir (dataDir: string): () => void {
  const path = join(dataDir, LOCK_FILE)
  const own = writeOwn(dataDir, path)
  try {
    // Bounded: a stale lock is taken over once; losing the race for it then is a real holder.
    for (let attempt = 0; ; attempt++) {
      if (create(dataDir, path, own)) break
      // One read decides: the pid judged is the pid of the file that may be removed.
      const judged = identity(path)
      const pid = judged === undefined ? undefined : pidOf(judged.split('/').slice(2).join('/'))
      // No pid may be an older keatrail between creating the file and writing to it: only a
      // file that stayed empty for a while is stale.
      if (attempt < 2 && (judged === undefined || (pid === undefined ? ageMs(path) > 5000 : !alive(pid) || startedAfter(pid, mtimeMs(path))))) {
        if (judged !== undefined) removeStale(path, judged)
        continue
      }
      throw new DataDirLockedError(dataDir, pid === undefined ? `lock file ${path}` : `pid ${pid}, lock file ${path}`)
    }
  } finally {
    rmSync(own, { force: true })
  }
  let released = false
  return () => {
    if (released) return
    released = true
    // Only our own: a lock some other process took over after ours was judged stale stays.
    if (holder(path) === process.pid) rmSync(path, { force: true })
  }
}
