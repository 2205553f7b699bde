// The /v2 API as the key's project sees it: every request carries `Authorization: Bearer <key>`.

const KEY_STORAGE = "conveyor.console.key";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.message || body.detail)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function storeKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

function query(params = {}) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== null && item !== undefined && item !== "") search.append(name, item);
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export class Api {
  constructor(key) {
    this.key = key;
  }

  async request(method, path, params) {
    const response = await fetch(`/v2${path}${query(params)}`, {
      method,
      headers: { Authorization: `Bearer ${this.key}`, Accept: "application/json" },
    });
    if (!response.ok) {
      let body = null;
      try {
        body = await response.json();
      } catch {
        body = null;
      }
      throw new ApiError(response.status, body);
    }
    return response.status === 204 ? null : response.json();
  }

  get(path, params) {
    return this.request("GET", path, params);
  }

  post(path, params) {
    return this.request("POST", path, params);
  }

  /** The first `limit` lines of an NDJSON resource; the rest of the stream is not read. */
  async ndjsonHead(path, limit) {
    const response = await fetch(`/v2${path}`, { headers: { Authorization: `Bearer ${this.key}` } });
    if (!response.ok) throw new ApiError(response.status, null);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const lines = [];
    let buffer = "";
    while (lines.length < limit) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const parts = buffer.split("\n");
      buffer = parts.pop();
      for (const part of parts) if (part.trim() && lines.length < limit) lines.push(JSON.parse(part));
    }
    if (buffer.trim() && lines.length < limit) lines.push(JSON.parse(buffer));
    await reader.cancel().catch(() => {});
    return lines;
  }

  /** Fetch a resource with the key and hand it to the browser as a file download. */
  async download(path, filename) {
    const response = await fetch(`/v2${path}`, { headers: { Authorization: `Bearer ${this.key}` } });
    if (!response.ok) throw new ApiError(response.status, null);
    const url = URL.createObjectURL(await response.blob());
    const link = Object.assign(document.createElement("a"), { href: url, download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }
}
