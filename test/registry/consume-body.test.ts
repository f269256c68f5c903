// consumeBody: the listener-based body reader under the range reads and readBody.
import t from 'tap';
import { Readable } from 'node:stream';
import { consumeBody, readBody, type HttpResponse } from '../../src/registry/http.js';

const bodyOf = (chunks: Buffer[]): Readable => Readable.from(chunks, { objectMode: false });
const asBody = (r: Readable): HttpResponse['body'] => r as unknown as HttpResponse['body'];

t.test('every chunk in order, then resolves at the end', async (t) => {
  const seen: string[] = [];
  await consumeBody(asBody(bodyOf([Buffer.from('ab'), Buffer.from('cd'), Buffer.from('e')])), (c) => {
    seen.push(c.toString());
    return true;
  });
  t.same(seen, ['ab', 'cd', 'e']);
});

t.test('false stops early and destroys the body', async (t) => {
  const body = bodyOf([Buffer.from('a'), Buffer.from('b'), Buffer.from('c')]);
  const seen: string[] = [];
  await consumeBody(asBody(body), (c) => {
    seen.push(c.toString());
    return seen.length < 2;
  });
  t.same(seen, ['a', 'b']);
  t.ok(body.destroyed);
});

t.test('a throw from the consumer rejects with it and destroys the body', async (t) => {
  const body = bodyOf([Buffer.from('a'), Buffer.from('b')]);
  await t.rejects(
    consumeBody(asBody(body), () => {
      throw new Error('too long');
    }),
    { message: 'too long' },
  );
  t.ok(body.destroyed);
});

t.test('an error of the body rejects; later events change nothing', async (t) => {
  const body = new Readable({ read() {} });
  const done = consumeBody(asBody(body), () => true);
  body.push(Buffer.from('x'));
  body.destroy(new Error('socket reset'));
  await t.rejects(done, { message: 'socket reset' });
  t.equal(body.listenerCount('data'), 0, 'listeners removed');
});

t.test('readBody: a body within its limit whole; over it FORMAT, or with truncate its first bytes; the body dropped', async (t) => {
  const chunks = () => [Buffer.from('abc'), Buffer.from('def'), Buffer.from('gh')];
  t.equal(Buffer.from(await readBody(asBody(bodyOf(chunks())), 8, 'manifest')).toString(), 'abcdefgh');
  const over = bodyOf(chunks());
  await t.rejects(readBody(asBody(over), 7, 'manifest'), { code: 'FORMAT', message: 'manifest is larger than 7 bytes' });
  t.ok(over.destroyed);
  const cut = bodyOf(chunks());
  t.equal(Buffer.from(await readBody(asBody(cut), 5, 'error body', true)).toString(), 'abcde');
  t.ok(cut.destroyed);
});
