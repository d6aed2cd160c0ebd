#!/bin/sh
# busybox udhcpc event script: apply the lease (address, router, DNS).
case $1 in
    bound|renew)
        ip addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
        for r in $router; do ip route add default via "$r" dev "$interface" && break; done
        : > /etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
        ;;
    deconfig)
        ip addr flush dev "$interface"
        ;;
esac
exit 0
