// The Anthropic Files API of a running batchyard, driven by the TypeScript SDK
// (@anthropic-ai/sdk, pinned in package.json). tests/integration/test_typescript_sdk.py
// runs it and asserts on what it prints.
//
//   node files.mjs BASE_URL KEY KEY_OF_ANOTHER_WORKSPACE PATH_OF_A_FILE_TO_UPLOAD
//   (or BATCHYARD_BASE_URL, BATCHYARD_KEY, BATCHYARD_OTHER_KEY, BATCHYARD_UPLOAD)
//
// KEY's workspace should hold no files yet: the pages are checked against exactly
// the files this script uploads. It prints one JSON object on stdout; a call that
// was meant to succeed and did not ends it with exit code 1 and the error on stderr.

import fs from 'node:fs';
import path from 'node:path';
import Anthropic, { NotFoundError, toFile } from '@anthropic-ai/sdk';
import { VERSION } from '@anthropic-ai/sdk/version';

const BETA = 'files-api-2025-04-14';

const [baseURL, key, otherKey, uploadPath] = [
  process.argv[2] ?? process.env.BATCHYARD_BASE_URL,
  process.argv[3] ?? process.env.BATCHYARD_KEY,
  process.argv[4] ?? process.env.BATCHYARD_OTHER_KEY,
  process.argv[5] ?? process.env.BATCHYARD_UPLOAD,
];
if (!baseURL || !key || !otherKey || !uploadPath) {
  console.error('usage: node files.mjs BASE_URL KEY OTHER_WORKSPACE_KEY UPLOAD_PATH');
  process.exit(2);
}

const client = (apiKey) => new Anthropic({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });
const mine = client(key);
const theirs = client(otherKey);

/** What a call that should fail threw: its class, status and body (or what it returned). */
async function failure(call) {
  try {
    return { returned: await call() };
  } catch (err) {
    if (!(err instanceof Anthropic.APIError)) throw err;
    return {
      name: err.constructor.name,
      not_found: err instanceof NotFoundError,
      status: err.status ?? null,
      type: err.type ?? null,
      request_id: err.requestID ?? null,
      body: err.error ?? null,
    };
  }
}

const ids = (items) => items.map((f) => f.id);
const bytesOf = async (response) => ({
  content_type: response.headers.get('content-type'),
  base64: Buffer.from(await response.arrayBuffer()).toString('base64'),
});

async function main() {
  const out = { version: VERSION, node: process.version };

  // Upload: a file from disk as a stream, then generated ones (one of every byte value).
  const notes = await mine.files.upload({ file: fs.createReadStream(uploadPath) });
  const binary = await mine.files.upload({
    file: await toFile(Buffer.from(Array.from({ length: 256 }, (_, i) => i)), 'all-bytes.bin'),
  });
  const more = [];
  for (let i = 0; i < 3; i++) {
    more.push(await mine.files.upload({ file: await toFile(Buffer.from('{}\n'), `f${i}.jsonl`) }));
  }
  const made = [notes, binary, ...more];
  out.uploaded = made;
  out.upload_name = path.basename(uploadPath);

  // Metadata and bytes.
  out.retrieved = await mine.files.retrieveMetadata(notes.id);
  out.downloaded = await bytesOf(await mine.files.download(notes.id));
  out.downloaded_binary = await bytesOf(await mine.files.download(binary.id));

  // Pages of two: the first by hand, then the SDK following `next_page`.
  const first = await mine.files.list({ limit: 2 });
  out.first_page = { ids: ids(first.data), next_page: first.next_page, has_next: first.hasNextPage() };
  out.pages = [];
  for await (const page of first.iterPages()) out.pages.push(ids(page.data));
  out.auto = [];
  for await (const f of mine.files.list({ limit: 2 })) out.auto.push(f.id);
  out.by_ids = ids((await mine.files.list({ ids: [more[0].id, 'file_nope', notes.id] })).data);

  // The beta generation sees the same files.
  const beta = mine.beta.files;
  out.beta = {
    retrieved: await beta.retrieveMetadata(binary.id, { betas: [BETA] }),
    listed: [],
  };
  for await (const f of beta.list({ limit: 3, betas: [BETA] })) out.beta.listed.push(f.id);

  // Another workspace's key: the same 404 as for no file at all; its list is empty.
  out.cross = {
    retrieve: await failure(() => theirs.files.retrieveMetadata(notes.id)),
    download: await failure(() => theirs.files.download(notes.id)),
    delete: await failure(() => theirs.files.delete(notes.id)),
    list: [],
  };
  for await (const f of theirs.files.list()) out.cross.list.push(f.id);
  out.still_there = (await mine.files.retrieveMetadata(notes.id)).id;

  // Delete, then every call on the deleted file is a 404.
  out.deleted = [];
  for (const f of made) out.deleted.push(await mine.files.delete(f.id));
  out.after_delete = {
    retrieve: await failure(() => mine.files.retrieveMetadata(notes.id)),
    download: await failure(() => mine.files.download(notes.id)),
    delete: await failure(() => mine.files.delete(notes.id)),
    beta_retrieve: await failure(() => beta.retrieveMetadata(notes.id, { betas: [BETA] })),
  };
  out.left = [];
  for await (const f of mine.files.list()) out.left.push(f.id);

  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  const detail = err instanceof Anthropic.APIError ? ` (status ${err.status}: ${JSON.stringify(err.error)})` : '';
  console.error(`files.mjs: ${err?.stack ?? err}${detail}`);
  process.exit(1);
});
