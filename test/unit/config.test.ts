import { loadConfig } from '../../lib/config';

describe('loadConfig', () => {
  it('applies defaults', () => {
    expect(loadConfig({ AWS_REGION: 'eu-west-1' })).toEqual({ AWS_REGION: 'eu-west-1', QK_TAG_CLUSTER: 'quorum-keeper/cluster', QK_TAG_MEMBER: 'quorum-keeper/etcd-member' });
  });
  it('names every bad variable in one message', () => {
    expect(() => loadConfig({ AWS_REGION: 'moon', QK_AWS_ENDPOINT: 'ftp://x' })).toThrow(/AWS_REGION: must be an AWS region.*QK_AWS_ENDPOINT/);
  });
});
