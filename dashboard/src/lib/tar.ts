// A folder chosen in the browser, packed as a tar.gz (POSIX ustar, a PAX header for a path too
// long for ustar's fields), gzipped with the browser's own CompressionStream. Like the CLI's
// packer, it leaves `.git` out; the API applies `.dockerignore` itself.

export interface TarEntry {
  path: string;
  file: Blob;
  mtime: number; // seconds since 1970
}

const BLOCK = 512;
const encoder = new TextEncoder();

/** The files of an `<input type=file webkitdirectory>`, their paths relative to the folder
 * chosen (its own name dropped), without anything under `.git`. */
export function folderEntries(files: Iterable<File>): TarEntry[] {
  const entries: TarEntry[] = [];
  for (const file of files) {
    const parts = (file.webkitRelativePath || file.name).split("/").slice(1);
    if (parts.length === 0 || parts.includes(".git")) continue;
    entries.push({ path: parts.join("/"), file, mtime: Math.floor(file.lastModified / 1000) });
  }
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** A tar archive of the entries (regular files, mode 0644), ending with two zero blocks. */
export function tarBlob(entries: TarEntry[]): Blob {
  const parts: BlobPart[] = [];
  for (const entry of entries) {
    const name = encoder.encode(entry.path);
    const split = splitName(name);
    if (!split) {
      const pax = paxRecords({ path: entry.path });
      parts.push(header(encoder.encode("PaxHeader"), new Uint8Array(), pax.length, entry.mtime, "x"), pax, padding(pax.length));
    }
    const [prefix, rest] = split ?? [new Uint8Array(), name.slice(-100)];
    parts.push(header(rest, prefix, entry.file.size, entry.mtime, "0"), entry.file, padding(entry.file.size));
  }
  parts.push(new Uint8Array(BLOCK * 2));
  return new Blob(parts, { type: "application/x-tar" });
}

/** The blob, gzipped. */
export async function gzip(blob: Blob): Promise<Blob> {
  const stream = blob.stream().pipeThrough(new CompressionStream("gzip"));
  return new Blob([await new Response(stream).arrayBuffer()], { type: "application/gzip" });
}

/** ustar keeps a path in `name` (100 bytes) or splits it at a `/` into `prefix` (155) and
 * `name`; null when neither fits. */
function splitName(name: Uint8Array): [Uint8Array, Uint8Array] | null {
  if (name.length <= 100) return [new Uint8Array(), name];
  for (let cut = name.length - 1; cut > 0; cut--) {
    if (name[cut] !== 0x2f) continue;
    if (cut <= 155 && name.length - cut - 1 <= 100) return [name.slice(0, cut), name.slice(cut + 1)];
  }
  return null;
}

function header(name: Uint8Array, prefix: Uint8Array, size: number, mtime: number, type: string): Uint8Array<ArrayBuffer> {
  const block = new Uint8Array(BLOCK);
  block.set(name, 0);
  octal(block, 100, 8, 0o644);
  octal(block, 108, 8, 0);
  octal(block, 116, 8, 0);
  octal(block, 124, 12, size);
  octal(block, 136, 12, mtime);
  block.set(encoder.encode(type), 156);
  block.set(encoder.encode("ustar\u000000"), 257);
  block.set(prefix, 345);
  block.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  const sum = block.reduce((total, byte) => total + byte, 0);
  block.set(encoder.encode(sum.toString(8).padStart(6, "0") + "\u0000 "), 148);
  return block;
}

function octal(block: Uint8Array, at: number, width: number, value: number): void {
  block.set(encoder.encode(value.toString(8).padStart(width - 1, "0") + "\u0000"), at);
}

function padding(size: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array((BLOCK - (size % BLOCK)) % BLOCK);
}

/** PAX records: "<length> <key>=<value>\n", the length counting itself. */
function paxRecords(values: Record<string, string>): Uint8Array<ArrayBuffer> {
  let text = "";
  for (const [key, value] of Object.entries(values)) {
    const body = ` ${key}=${value}\n`;
    let length = encoder.encode(body).length;
    length += String(length + String(length).length).length;
    text += length + body;
  }
  return encoder.encode(text);
}
