import Foundation
import BackdropTestSupport
import XCTest

@testable import Torch

/// Optimisers and schedules against `torch.optim` on the problem of tools/make_nn_fixtures.py:
/// 20 steps of mse(x Wᵀ + b, y), every parameter value and learning rate compared.
final class OptimTests: XCTestCase {
    lazy var fixtures = try! SafetensorsFile(url: TestSupport.fixture("nn/nn.safetensors"))

    struct Problem {
        let w: Parameter, b: Parameter, x: Tensor, y: Tensor
        func loss() throws -> Tensor { try F.mseLoss(F.linear(x, w, b), y) }
    }

    func makeProblem() throws -> Problem {
        Problem(w: try Parameter(fixtures.tensor("problem.w")), b: try Parameter(fixtures.tensor("problem.b")),
                x: try fixtures.tensor("problem.x"), y: try fixtures.tensor("problem.y"))
    }

    /// Runs 20 steps and compares with the reference trajectory `name`.
    func assertTrajectory(_ name: String, optimizer: (Problem) throws -> any Optimizer,
                          schedule: ((any Optimizer) throws -> LRScheduler)? = nil,
                          file: StaticString = #filePath, line: UInt = #line) throws {
        let problem = try makeProblem()
        let opt = try optimizer(problem)
        let scheduler = try schedule?(opt)
        let ws = try fixtures.tensor("\(name).w"), bs = try fixtures.tensor("\(name).b")
        let lrs = try fixtures.tensor("\(name).lr").toArray(Double.self)
        let groups = opt.paramGroups.count
        var worst = 0.0
        for step in 0..<20 {
            try opt.zeroGrad()
            try problem.loss().backward()
            try opt.step()
            scheduler?.step()
            worst = max(worst, try TestSupport.maxAbsDifference(problem.w, ws.select(dim: 0, index: step)))
            worst = max(worst, try TestSupport.maxAbsDifference(problem.b, bs.select(dim: 0, index: step)))
            for g in 0..<groups {
                XCTAssertEqual(opt.paramGroups[g].lr, lrs[step * groups + g], accuracy: 1e-12,
                               "\(name) lr at step \(step)", file: file, line: line)
            }
        }
        XCTAssertLessThanOrEqual(worst, 1e-6, "\(name): max-abs parameter error \(worst)", file: file, line: line)
    }

    func testAdamWWithCosineAnnealingMatchesTorch() throws {
        try assertTrajectory("adamw_cosine",
                             optimizer: { try AdamW([$0.w, $0.b], lr: 1e-2, betas: (0.9, 0.99), weightDecay: 0.1) },
                             schedule: { try LRScheduler($0, .cosine(tMax: 8, etaMin: 1e-4)) })
    }

    func testAdamWParameterGroupsWithLinearWarmupMatchTorch() throws {
        try assertTrajectory("adamw_groups_linear", optimizer: {
            try AdamW([ParamGroup([$0.w], lr: 2e-2, weightDecay: 0.05), ParamGroup([$0.b], lr: 5e-3, weightDecay: 0)])
        }, schedule: { try LRScheduler($0, .linear(startFactor: 0.25, totalIters: 5)) })
    }

    func testSGDMomentumMatchesTorch() throws {
        try assertTrajectory("sgd_momentum", optimizer: {
            try SGD([$0.w, $0.b], lr: 5e-2, momentum: 0.9, dampening: 0.1, weightDecay: 0.01)
        })
        try assertTrajectory("sgd_nesterov", optimizer: { try SGD([$0.w, $0.b], lr: 5e-2, momentum: 0.8, nesterov: true) })
    }

    func testClipGradNormMatchesTorch() throws {
        let problem = try makeProblem()
        try problem.loss().backward()
        let total = try clipGradNorm([problem.w, problem.b], maxNorm: 0.5)
        XCTAssertEqual(total, try fixtures.tensor("clip.total_norm").item(), accuracy: 1e-5)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(problem.w.grad!, fixtures.tensor("clip.w_grad")), 1e-6)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(problem.b.grad!, fixtures.tensor("clip.b_grad")), 1e-6)
    }

    /// Ten steps, save, ten more in a fresh optimiser loaded from the file = twenty uninterrupted.
    /// The EMA against diffusers' `EMAModel` (decay 0.8) along an AdamW trajectory, step by step:
    /// the warm-up decay (1 + n) / (10 + n) capped at the decay, and d = 0 at the first step.
    func testExponentialMovingAverageMatchesDiffusersEMAModel() throws {
        let problem = try makeProblem()
        let opt = try AdamW([problem.w, problem.b], lr: 1e-2)
        let ema = try ExponentialMovingAverage([("w", problem.w), ("b", problem.b)], decay: 0.8)
        let ws = try fixtures.tensor("ema.w"), bs = try fixtures.tensor("ema.b")
        var worst = 0.0
        for step in 0..<20 {
            try opt.zeroGrad()
            try problem.loss().backward()
            try opt.step()
            try ema.update()
            worst = max(worst, try TestSupport.maxAbsDifference(ema.shadow[0], ws.select(dim: 0, index: step)))
            worst = max(worst, try TestSupport.maxAbsDifference(ema.shadow[1], bs.select(dim: 0, index: step)))
        }
        print("EMA vs diffusers EMAModel: max-abs \(worst)")
        XCTAssertLessThan(worst, 1e-6)
        XCTAssertEqual(ema.currentDecay, 20.0 / 29.0, accuracy: 1e-15, "(1 + 19) / (10 + 19) after 20 steps")
        XCTAssertThrowsError(try ExponentialMovingAverage([("w", problem.w)], decay: 1))
    }

    func testStateSaveAndLoadContinuesExactly() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let straight = try makeProblem()
        let optA = try AdamW([straight.w, straight.b], lr: 1e-2, weightDecay: 0.1)
        let schedA = try LRScheduler(optA, .cosine(tMax: 8, etaMin: 1e-4))
        for _ in 0..<20 {
            try optA.zeroGrad(); try straight.loss().backward(); try optA.step(); schedA.step()
        }

        let resumed = try makeProblem()
        let optB = try AdamW([resumed.w, resumed.b], lr: 1e-2, weightDecay: 0.1)
        let schedB = try LRScheduler(optB, .cosine(tMax: 8, etaMin: 1e-4))
        for _ in 0..<10 {
            try optB.zeroGrad(); try resumed.loss().backward(); try optB.step(); schedB.step()
        }
        let file = directory.appendingPathComponent("optimizer.safetensors")
        try optB.save(to: file)
        let optC = try AdamW([resumed.w, resumed.b], lr: 1e-2, weightDecay: 0.1)
        try optC.load(from: file)
        let schedC = try LRScheduler(optC, .cosine(tMax: 8, etaMin: 1e-4))
        schedC.restore(lastEpoch: schedB.lastEpoch)
        XCTAssertEqual(optC.paramGroups[0].lr, optB.paramGroups[0].lr)
        for _ in 0..<10 {
            try optC.zeroGrad(); try resumed.loss().backward(); try optC.step(); schedC.step()
        }
        XCTAssertEqual(try TestSupport.maxAbsDifference(straight.w, resumed.w), 0)
        XCTAssertEqual(optA.paramGroups[0].lr, optC.paramGroups[0].lr, accuracy: 1e-15)

        let sgd = try SGD([resumed.w], lr: 0.1)
        XCTAssertThrowsError(try sgd.load(from: file)) { XCTAssertTrue("\($0)".contains("not SGD")) }
    }

    func testInvalidSettingsAreRejected() throws {
        let p = try Parameter(.zeros([2]))
        XCTAssertThrowsError(try AdamW([p], lr: -1))
        XCTAssertThrowsError(try AdamW([p], betas: (1.0, 0.9)))
        XCTAssertThrowsError(try SGD([p], lr: 0.1, nesterov: true))
        XCTAssertThrowsError(try LRScheduler(try SGD([p], lr: 0.1), .cosine(tMax: 0)))
    }
}
