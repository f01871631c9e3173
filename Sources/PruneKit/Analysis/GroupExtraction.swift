import PruneIR

/// Turns the closure's connected sites into ``PruningGroup``s: units, slices, gate sites, costs.
extension GroupBuilder {
    func extractGroups() -> [PruningGroup] {
        var members: [Int: [Int]] = [:]
        var roots: [Int] = []
        for s in sites.indices {
            let r = findSite(s)
            if members[r] == nil { roots.append(r) }
            members[r, default: []].append(s)
        }
        var position: [ObjectIdentifier: Int] = [:]
        for (i, n) in graph.nodes.enumerated() { position[ObjectIdentifier(n)] = i }
        let costs = CostModel().costs(model)
        var absorbedBy: [Int: [Int]] = [:]
        for (s, _) in absorbing { absorbedBy[findSite(s), default: []].append(s) }

        var groups: [PruningGroup] = []
        for r in roots {
            guard let ss = members[r] else { continue }
            groups.append(makeGroup(id: groups.count, root: r, members: ss, absorbed: absorbedBy[r] ?? [], position: position, costs: costs))
        }
        return groups
    }

    private func makeGroup(id: Int, root r: Int, members ss: [Int], absorbed: [Int], position: [ObjectIdentifier: Int], costs: [NodeCost]) -> PruningGroup {
        // Units are numbered in the order the first site (the seed layer's outputs) meets them.
        var unitOf: [Int: Int] = [:]
        var unitsBySite: [Int: [Int]] = [:]
        for s in ss {
            let site = sites[s]
            var units: [Int] = []
            units.reserveCapacity(site.size)
            for e in 0 ..< site.size {
                let root = findElement(site.base + e)
                if let u = unitOf[root] {
                    units.append(u)
                } else {
                    unitOf[root] = unitOf.count
                    units.append(unitOf.count - 1)
                }
            }
            unitsBySite[s] = units
        }
        let unitCount = unitOf.count
        var slices: [GroupSlice] = []
        for s in ss {
            let site = sites[s]
            let target: GroupSlice.Target = site.node.map { .parameter(node: $0, input: site.input) } ?? .activation(site.value)
            let isMask = site.node != nil && Masks.isMask(site.value)
            slices.append(GroupSlice(target: target, axis: site.axis, size: site.size, units: unitsBySite[s] ?? [], isMask: isMask))
        }

        var params = [Int](repeating: 0, count: unitCount)
        var masks: [Float]?
        var mixed = false
        for sl in slices where sl.isParameter {
            guard let t = sl.value.constantValue else { continue }
            if sl.isMask {
                guard let v = try? t.floats() else { continue }
                var m = masks ?? [Float](repeating: .infinity, count: unitCount)
                // A mask is shaped [units, 1, ...]: element i of the axis is element i of the data.
                for (i, u) in sl.units.enumerated() where i < v.count {
                    if m[u] != .infinity, m[u] != v[i] { mixed = true }
                    m[u] = min(m[u], v[i])
                }
                masks = m
                continue
            }
            let per = t.elementCount / max(sl.size, 1)
            for u in sl.units { params[u] += per }
        }

        var macs = [Double](repeating: 0, count: unitCount)
        var paramSiteOf: [ObjectIdentifier: GroupSlice] = [:]
        var activationSiteOf: [ObjectIdentifier: GroupSlice] = [:]
        for sl in slices {
            if let n = sl.node, !sl.isMask {
                if case .parameter(_, 1) = sl.target { paramSiteOf[ObjectIdentifier(n)] = sl }
            } else if !sl.isParameter {
                activationSiteOf[ObjectIdentifier(sl.value)] = sl
            }
        }
        var layers: [Node] = []
        for c in costs {
            let n = c.node
            if paramSiteOf[ObjectIdentifier(n)] != nil, CostModel.macBearingOps.contains(n.opType) { layers.append(n) }
            guard let m = c.macs, m > 0 else { continue }
            let sl = paramSiteOf[ObjectIdentifier(n)]
                ?? n.outputs.first.flatMap { activationSiteOf[ObjectIdentifier($0)] }
                ?? n.inputs.first.flatMap { $0.flatMap { activationSiteOf[ObjectIdentifier($0)] } }
            guard let sl else { continue }
            let share = Double(m) / Double(sl.size)
            for u in sl.units { macs[u] += share }
        }

        var reason = blockReason[r] ?? failedShapeCheck(root: r, unitsBySite: unitsBySite)
        let counts = countConstants.filter { findSite($0.site) == r }
        for c in counts where reason == nil {
            guard let source = c.source else { continue }
            let src = siteIndex[.activation(ObjectIdentifier(source), c.sourceAxis)]
            if src.map({ findSite($0) != r }) ?? true {
                reason = "\(c.node.displayName) divides by the head count of '\(source.name)', which is not pruned with it"
            }
        }
        let gates = reason == nil ? gateSites(absorbed, members: ss, unitCount: unitCount, unitsBySite: unitsBySite) : []
        if reason == nil {
            if unitCount < 2 {
                reason = "it has a single unit"
            } else if !slices.contains(where: { $0.isParameter && !$0.isMask }) {
                reason = "it holds no parameters"
            } else if gates.isEmpty {
                reason = "no layer consumes its channels where a gate could sit"
            }
        }

        let kind: GroupKind
        let hasConv = slices.contains(where: { ["Conv", "ConvTranspose"].contains($0.node?.opType.name ?? "") })
        if hasConv && normGroups.contains(r) {
            // Conv channels tied into normalization groups (GroupNorm): channels, a group per unit.
            kind = .channels
        } else if regrouped.contains(r) {
            // Query heads cut from repeated keys/values are their own kind when asked for; a
            // multi-query model's are its only head units, so they stay `heads`.
            kind = queryHeads && ss.contains(where: repeatCuts.contains) ? .queryHeads : .heads
        } else if slices.contains(where: { ["Conv", "ConvTranspose"].contains($0.node?.opType.name ?? "") }) {
            kind = .channels
        } else {
            kind = .neurons
        }
        let first = layers.min { (position[ObjectIdentifier($0)] ?? .max) < (position[ObjectIdentifier($1)] ?? .max) }
        let name = first.map { $0.name.isEmpty ? ($0.inputs[1]?.name ?? $0.displayName) : $0.name } ?? sites[r].value.name
        let heads = kind == .heads || kind == .queryHeads ? ss.compactMap { headAxes[$0] }.max() : nil
        return PruningGroup(id: id, kind: kind, name: name, unitCount: unitCount, slices: slices, gateSites: gates,
                            blockedReason: reason, paramsPerUnit: params, macsPerUnit: macs, maskValues: masks, queryHeads: heads,
                            hasMixedMasks: mixed, unitCountConstants: counts.map { ($0.node, $0.input) })
    }

    /// The first computed shape element of the group that would go wrong after pruning: its
    /// source tensor is not in the group, or a unit's share of the two axes differs from the
    /// element's factor (`dim(k) * 3` must keep three query heads per kv head).
    private func failedShapeCheck(root r: Int, unitsBySite: [Int: [Int]]) -> String? {
        for c in shapeChecks where findSite(c.site) == r {
            guard let src = siteIndex[.activation(ObjectIdentifier(c.source), c.sourceAxis)], findSite(src) == r,
                let a = unitsBySite[c.site], let b = unitsBySite[src]
            else {
                return "the target shape of \(c.node.displayName) is computed from axis \(c.sourceAxis) of '\(c.source.name)', which is not pruned with it"
            }
            var na: [Int: Int] = [:], nb: [Int: Int] = [:]
            for u in a { na[u, default: 0] += 1 }
            for u in b { nb[u, default: 0] += 1 }
            for u in Set(na.keys).union(nb.keys) where (na[u] ?? 0) * c.over != (nb[u] ?? 0) * c.times {
                return "the target shape of \(c.node.displayName) is computed from '\(c.source.name)' in proportions its units do not keep"
            }
        }
        return nil
    }

    /// One gate per layer input that contracts the group's axis, placed on the nearest value
    /// (that input, or upstream through reshapes, transposes and unary ops) holding each unit at
    /// most once: a `[b, s, H*D]` input of an output projection is gated at `[b, s, H, D]`.
    ///
    /// Units no layer reads (channels a `Slice` drops, say) are dead: removing them changes
    /// nothing, but a mask needs somewhere to live, so a gate also goes on the first value that holds
    /// every unit once (the seed layer's output).
    private func gateSites(_ absorbed: [Int], members: [Int], unitCount: Int, unitsBySite: [Int: [Int]]) -> [GateSite] {
        var out = consumerGateSites(absorbed, unitsBySite: unitsBySite)
        guard !out.isEmpty else { return [] }
        let covered = Set(out.flatMap(\.units))
        if covered.count < unitCount {
            let whole = members.first { s in
                let units = unitsBySite[s] ?? []
                return sites[s].node == nil && units.count == unitCount && Set(units).count == unitCount && sites[s].value.producer != nil
            }
            guard let whole else { return [] }
            out.append(GateSite(value: sites[whole].value, axis: sites[whole].axis, units: unitsBySite[whole] ?? []))
        }
        return out
    }

    private func consumerGateSites(_ absorbed: [Int], unitsBySite: [Int: [Int]]) -> [GateSite] {
        var out: [GateSite] = []
        var seen: Set<Int> = []
        for start in absorbed {
            // The nearest value up the chain that holds each unit once; failing that (a unit
            // spread over several indices, as the query heads of one kv group), the smallest one.
            var s = start
            var best = start
            for _ in 0 ..< 8 {
                let units = unitsBySite[s] ?? []
                if Set(units).count == units.count {
                    best = s
                    break
                }
                if sites[s].size < sites[best].size { best = s }
                guard let p = sites[s].value.producer, p.opType.canonicalDomain.isEmpty,
                    GroupBuilder.reshapeLike.contains(p.opType.name) || p.opType.name == "Transpose"
                        || GroupBuilder.elementwiseUnary.contains(p.opType.name),
                    let x = p.inputs.first ?? nil, let rank = rankOf(x),
                    let up = (0 ..< rank).compactMap({ siteIndex[.activation(ObjectIdentifier(x), $0)] }).first(where: { findSite($0) == findSite(s) })
                else { break }
                s = up
            }
            guard sites[best].value.producer != nil else { return [] }
            if seen.insert(best).inserted {
                out.append(GateSite(value: sites[best].value, axis: sites[best].axis, units: unitsBySite[best] ?? []))
            }
        }
        return out
    }
}
