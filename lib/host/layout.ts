/** Where things are on a master, as the host scripts and the flows both assume. */

/** The device name the etcd volume is attached as (NVMe instances show it under /dev/disk/by-id). */
export const ETCD_DEVICE = '/dev/xvdf';

/** kube-apiserver's secure port: the load balancer's target port. */
export const APISERVER_PORT = 6443;
