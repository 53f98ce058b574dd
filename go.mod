module tcpkit

go 1.26
