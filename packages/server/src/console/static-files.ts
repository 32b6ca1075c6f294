import { readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

/** A built file of the console, read whole (the largest is the script bundle, a few hundred KiB). */
export interface StaticFile {
  body: Buffer;
  contentType: string;
}

/** What the console's files are to a browser (`X-Content-Type-Options: nosniff` makes the type binding). */
const contentTypes: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

export function contentTypeOf(file: string): string {
  return contentTypes[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * One path segment as the build names files (`index-B2x_9aQ.js`): letters, digits, `.`, `_`, `-`, starting with a
 * letter or digit. This alone refuses `..`, hidden files, separators (`/`, `\`, an encoded `%2f` arrives decoded),
 * NUL and every other character a traversal needs.
 */
const SAFE_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A relative path inside the build, or undefined when it could name anything outside (or nothing sensible). */
export function safeRelativePath(requested: string): string | undefined {
  if (requested.length === 0 || requested.length > 512) return undefined;
  const segments = requested.split('/');
  if (segments.length > 4 || !segments.every((s) => SAFE_SEGMENT.test(s) && !s.includes('..')))
    return undefined;
  return segments.join(path.sep);
}

/** The real path of `file` when it is a regular file inside `root` (symbolic links resolved first), else undefined. */
async function containedFile(root: string, file: string): Promise<string | undefined> {
  try {
    const [realRoot, real] = await Promise.all([realpath(root), realpath(file)]);
    if (!real.startsWith(realRoot + path.sep)) return undefined;
    return (await stat(real)).isFile() ? real : undefined;
  } catch {
    return undefined; // missing, unreadable, or a dangling link: not a file we serve
  }
}

/**
 * The console's built files under `dir` (packages/console/dist): `index()` is the page, `file(relative)` one of
 * the built files named by a request path. Nothing outside `dir` is ever read: the requested path must be made of
 * safe segments (see SAFE_SEGMENT) and its real path must stay inside the real `dir`.
 */
export function staticFiles(dir: string) {
  const root = path.resolve(dir);
  return {
    root,
    async index(): Promise<StaticFile | undefined> {
      const file = await containedFile(root, path.join(root, 'index.html'));
      return file ? { body: await readFile(file), contentType: contentTypeOf(file) } : undefined;
    },
    async file(relative: string): Promise<StaticFile | undefined> {
      const safe = safeRelativePath(relative);
      if (safe === undefined) return undefined;
      const file = await containedFile(root, path.join(root, safe));
      return file ? { body: await readFile(file), contentType: contentTypeOf(file) } : undefined;
    },
  };
}

export type StaticFiles = ReturnType<typeof staticFiles>;
