// consumeBody: the listener-based body reader under the range reads.
import t from 'tap';
import { Readable } from 'node:stream';
import { consumeBody, type HttpResponse } from '../../src/registry/http.js';

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
