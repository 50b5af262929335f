/** A URL's user:password (in any text). */
export const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi

/** A URL without its user and password (what an operator may see of a store's address). */
export function withoutCredentials (url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    return u.toString().replace(/\/$/, '')
  } catch {
    return url.replace(URL_USERINFO, '$1')
  }
}
