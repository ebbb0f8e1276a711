import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PostPort } from './PostPort.ts';

test('the POST port ignores writes (an I/O delay) and reads float high', () => {
  const post = new PostPort();
  post.ioWrite();
  assert.equal(post.ioRead(), 0xff);
});
