import { createHash, randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";

export const API_KEY_HEADER = "x-api-key";
export const ACCESS_TOKEN_COOKIE = "session";
const MAX_RETRIES = 5;

export interface UploadResult {
  id: string;
  etag: string;
  size: number;
  url: string;
}

export function etagOf(buf: Buffer): string {
  return `"${createHash("md5").update(buf).digest("hex")}"`;
}

export async function upload(path: string, endpoint = "https://uploads.example.com/v2/files"): Promise<UploadResult> {
  const body = await readFile(path);
  const apiKey = process.env.UPLOAD_API_KEY ?? "";
  let attempt = 0;
  while (true) {
    attempt += 1;
    const res = await fetch(`${endpoint}?name=${encodeURIComponent(path)}&overwrite=false`, {
      method: "PUT",
      headers: { [API_KEY_HEADER]: apiKey, "content-type": "application/octet-stream" },
      body,
    });
    if (res.ok) {
      const json = (await res.json()) as { id: string; url: string };
      return { id: json.id ?? randomUUID(), etag: etagOf(body), size: body.length, url: json.url };
    }
    if (attempt >= MAX_RETRIES || res.status < 500) {
      throw new Error(`upload failed with ${res.status} after ${attempt} attempts`);
    }
    await new Promise((r) => setTimeout(r, 2 ** attempt * 100));
  }
}

export const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
export const icon = "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCAxNiAxNiI+PGNpcmNsZSBjeD0iOCIgY3k9IjgiIHI9IjYiLz48L3N2Zz4=";
