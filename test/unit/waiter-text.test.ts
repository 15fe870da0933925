/** An SDK waiter's timeout reads as words in a step failure, not as the waiter's JSON. */
import { type EC2Client, waitUntilVolumeAvailable } from '@aws-sdk/client-ec2';
import { waiterText } from '../../lib/aws/ec2';

describe('waiterText', () => {
  it('turns the SDK waiter\'s own timeout error into a sentence with the answers it saw', async () => {
    // The real SDK waiter, over a client whose volume stays in-use.
    const client = { send: () => Promise.resolve({ Volumes: [{ State: 'in-use' }], $metadata: { httpStatusCode: 200 } }) } as unknown as EC2Client;
    const err = await waitUntilVolumeAvailable({ client, maxWaitTime: 1, minDelay: 0.2, maxDelay: 0.2 }, { VolumeIds: ['vol-1'] }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^\{"state":"TIMEOUT"/);
    expect(waiterText(err)).toMatch(/^the wait timed out( \(answers seen: .+\))?$/);
  });
  it('leaves any other error alone', () => {
    expect(waiterText(new Error('VolumeInUse'))).toBeNull();
    expect(waiterText('x')).toBeNull();
  });
});
