// SPDX-License-Identifier: MIT
module weir/bench/queue_go

go 1.19
