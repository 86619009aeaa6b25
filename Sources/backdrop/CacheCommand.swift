import ArgumentParser
import Experiments
import Foundation
import MultiView
import Torch

struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "The HDF5 latent cache that training reads instead of running the VAE and text encoder.",
        subcommands: [CacheBuildCommand.self]
    )
}

struct CacheBuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Encode every view and prompt of a run config's split once and write dataset.latent_cache.",
        discussion: """
            With yaw_offset: random the cache holds dataset.cache_offsets offsets per panorama, and \
            training (from the cache or not) draws each epoch's offset among them. The file is written \
            under a temporary name and renamed into place; training refuses a cache whose attributes \
            (model hash, resolution, views, fov, yaw policy, seed, prompt prefix, split, …) differ from \
            the run's.
            """
    )

    @Option(help: "Run config (YAML).") var config: String
    @Option(help: "Write here instead of the config's dataset.latent_cache.") var out: String?
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        let run = Run(config: try RunConfig.load(URL(fileURLWithPath: config)))
        let started = Date()
        let url = try LatentCache.build(run: run, output: out.map { URL(fileURLWithPath: $0) })
        print(String(format: "wrote %@ in %.1f s", url.path, Date().timeIntervalSince(started)))
    }
}
