import { expect } from 'chai';
import { parserProblem } from '../../../dataplane/src/http/connections.ts';

describe("parserProblem (Node's HTTP parser errors as problems)", () => {
  const cases: [string, number, string][] = [
    ['HPE_HEADER_OVERFLOW', 431, 'headers-too-large'],
    ['HPE_CHUNK_EXTENSIONS_OVERFLOW', 413, 'blob-too-large'],
    ['ERR_HTTP_REQUEST_TIMEOUT', 408, 'request-timeout'],
    ['HPE_INVALID_CONTENT_LENGTH', 400, 'bad-request'],
    ['HPE_UNEXPECTED_CONTENT_LENGTH', 400, 'bad-request'],
    ['HPE_INVALID_CHUNK_SIZE', 400, 'bad-request'],
    ['HPE_INVALID_METHOD', 400, 'bad-request'],
  ];
  for (const [code, status, problem] of cases) {
    it(`maps ${code} to ${status} ${problem}`, () => {
      const error = Object.assign(new Error('Parse Error: Invalid thing'), { code });
      const mapped = parserProblem(error);
      expect(mapped.status).to.equal(status);
      expect(mapped.code).to.equal(problem);
    });
  }

  it("says what the parser found, without Node's prefix", () => {
    const error = Object.assign(new Error('Parse Error: Invalid character in Content-Length'), {
      code: 'HPE_INVALID_CONTENT_LENGTH',
    });
    expect(parserProblem(error).message).to.equal(
      'The request is not valid HTTP/1.1: Invalid character in Content-Length',
    );
  });
});
