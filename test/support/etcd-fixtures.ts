/** Members and endpoint statuses of a made-up cluster (hosts 10.0.<h>.5), for pure-logic tests. */
import { memberIdFromHex, type EndpointStatus, type Member } from '../../lib/etcd';

export const id = (h: string) => memberIdFromHex(h);

export const member = (h: string, name: string, extra: Partial<Member> = {}): Member => ({
  id: id(h), name, peerUrls: [`http://10.0.${h}.5:2380`], clientUrls: [`http://10.0.${h}.5:2379`], isLearner: false, started: true, ...extra,
});

/** Member `h`'s status; `leader` is the hex ID of the leader it follows (null: none). */
export const status = (h: string, leader: string | null, extra: Partial<EndpointStatus> = {}): EndpointStatus => ({
  endpoint: `http://10.0.${h}.5:2379`, memberId: id(h), clusterId: id('1'), version: '3.4.23', dbSize: 1, dbSizeInUse: 1, leader: leader ? id(leader) : null,
  isLeader: leader === h, isLearner: false, raftIndex: 10, raftAppliedIndex: 10, raftTerm: 2, revision: 5, errors: [], ...extra,
});
